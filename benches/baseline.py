"""The baseline keysync is measured against: what a user would otherwise write.

Pages through the listing with a plain HTTP client and upserts each page into SQLite with
sqlite-utils: current state only, no history, no retries. Usage:
    python3 benches/baseline.py BASE_URL TOKEN DB_PATH
"""
import sys

import requests
import sqlite_utils


def main() -> None:
    base_url, token, db_path = sys.argv[1:4]
    session = requests.Session()
    session.headers["Authorization"] = token
    db = sqlite_utils.Database(db_path)
    page = 1
    while True:
        response = session.get(f"{base_url}/api/token/", params={"p": page, "page_size": 100})
        response.raise_for_status()
        items = response.json()["data"]["items"]
        if items:
            db["keys"].upsert_all(items, pk="id", alter=True)
        if len(items) < 100:
            break
        page += 1


if __name__ == "__main__":
    main()
