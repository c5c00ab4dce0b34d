//! `keysync html`: the page, parsed with a real HTML parser, against what `usage`, `query
//! --report` and `diff` print for the same window and `--now`, over the ten daily pulls of
//! `daily_pulls` plus one more pull that renames, disables, exhausts and expires keys. Also:
//! no script or external URL anywhere, database text escaped, and a file never half written.

use std::collections::BTreeMap;

use scraper::{ElementRef, Html, Selector};
use serde_json::json;

use crate::common::{Harness, run, table_cells};
use crate::daily_pulls::{DAY, HOUR, by_the_rule, day_of, pull_at, pull_time, ten_days, usd};
use crate::money::{dollars, grouped};

/// A key name that HTML would read as markup, with an address in it.
const HOSTILE_NAME: &str = r#"<b>bold</b> & "quoted" https://evil.test"#;

/// "Now" for every command: an hour after the last pull.
fn now() -> i64 {
    pull_time(9) + HOUR
}

pub fn sel(css: &str) -> Selector {
    Selector::parse(css).unwrap()
}

fn text_of(element: ElementRef<'_>) -> String {
    element.text().collect()
}

/// `keysync html -q ARGS --out FILE` run in `h`'s folder, the page parsed as a browser would.
pub fn written_page(h: &Harness, args: &[&str]) -> Html {
    let out = h.dir.path().join("written.html");
    run(
        h.keysync()
            .args(["html", "-q"])
            .args(args)
            .arg("--out")
            .arg(&out),
        0,
    );
    Html::parse_document(&std::fs::read_to_string(&out).unwrap())
}

/// The text of every element `css` selects, in document order.
pub fn texts(page: &Html, css: &str) -> Vec<String> {
    page.select(&sel(css)).map(text_of).collect()
}

/// A table's body cells, as text.
pub fn table_rows(page: &Html, css: &str) -> Vec<Vec<String>> {
    let table = page
        .select(&sel(css))
        .next()
        .unwrap_or_else(|| panic!("no {css}"));
    table
        .select(&sel("tbody tr"))
        .map(|tr| tr.select(&sel("td")).map(text_of).collect())
        .collect()
}

/// A table's header cells.
fn table_head(page: &Html, css: &str) -> Vec<String> {
    let table = page.select(&sel(css)).next().unwrap();
    table.select(&sel("thead th")).map(text_of).collect()
}

/// CSV output: the header and the records.
fn csv_rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let head = reader.headers().unwrap().iter().map(String::from).collect();
    let rows = reader
        .records()
        .map(|r| r.unwrap().iter().map(String::from).collect())
        .collect();
    (head, rows)
}

/// `keysync ARGS --now NOW`, its stdout.
fn output(h: &Harness, args: &[&str]) -> String {
    run(
        h.keysync().args(args).args(["--now", &now().to_string()]),
        0,
    )
    .stdout
}

/// `keysync html ARGS --out FILE` at [`now`]: the file's text.
fn html(h: &Harness, args: &[&str]) -> String {
    let out = h.dir.path().join("report.html");
    let done = run(
        h.keysync()
            .args(["html", "--out"])
            .arg(&out)
            .args(args)
            .args(["--now", &now().to_string()]),
        0,
    );
    assert!(done.stdout.is_empty(), "{}", done.stdout);
    assert_eq!(
        done.stderr.trim_end(),
        format!(
            "keysync: wrote {} ({} bytes)",
            out.display(),
            std::fs::metadata(&out).unwrap().len()
        )
    );
    // Private, like the database: the page names every key.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&out).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    std::fs::read_to_string(&out).unwrap()
}

#[test]
fn the_page_shows_what_usage_and_the_reports_print() {
    let (h, mut snapshots, names) = ten_days();
    let id_of = |name: &str| *names.iter().find(|(_, n)| *n == name).unwrap().0;
    let (steady, refunded, idle) = (id_of("steady"), id_of("refunded"), id_of("idle"));
    let (newcomer, latecomer) = (id_of("newcomer"), id_of("latecomer"));
    // One more pull, half an hour after the tenth: a hostile name, a disabled key, an
    // exhausted one, one that expired yesterday and one that expires in three days.
    let extra = pull_time(9) + HOUR / 2;
    {
        let mut account = h.server.account();
        account.set(steady, "name", json!(HOSTILE_NAME));
        account.set(steady, "used_quota", json!(10_000 + 1_500 * 81 + 4_321));
        account.set(refunded, "status", json!(2));
        account.set(newcomer, "remain_quota", json!(0));
        account.set(latecomer, "expired_time", json!(now() - DAY));
        account.set(idle, "expired_time", json!(now() + 3 * DAY));
    }
    snapshots.push(pull_at(&h, extra));
    let page_text = html(&h, &[]);
    let page = Html::parse_document(&page_text);

    // Self-contained: no script, no address, no fetched resource.
    for banned in [
        "<script", "http://", "https://", "url(", "@import", "<link", "<img",
    ] {
        assert!(!page_text.to_ascii_lowercase().contains(banned), "{banned}");
    }
    for id in ["usage", "status", "expiring", "changes", "exposed"] {
        assert_eq!(
            page.select(&sel(&format!("section#{id}"))).count(),
            1,
            "{id}"
        );
    }

    // The header: the database, the account, the latest good sync and its time.
    let good: Vec<(i64, i64)> = h
        .rows("SELECT id, started_at FROM good_syncs ORDER BY id")
        .into_iter()
        .map(|row| match (&row[0], &row[1]) {
            (rusqlite::types::Value::Integer(id), rusqlite::types::Value::Integer(at)) => {
                (*id, *at)
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(good.len(), 11);
    let (latest, latest_at) = *good.last().unwrap();
    let header = |id: &str| text_of(page.select(&sel(&format!("dd#{id}"))).next().unwrap());
    assert_eq!(header("database"), h.db.display().to_string());
    assert_eq!(header("account"), "user 5678");
    assert_eq!(
        header("latest-sync"),
        format!(
            "sync {latest} (ok), started {} (30m 0s ago)",
            readable(latest_at)
        )
    );
    assert_eq!(header("now"), format!("{} (--now)", readable(now())));

    // Top consumers: exactly the rows of `usage --top 25` (here every key), and by the rule.
    let (head, _) = csv_rows(&output(&h, &["usage", "--top", "25", "--format", "csv"]));
    assert_eq!(table_head(&page, "table#top-consumers"), head);
    let consumers = table_rows(&page, "table#top-consumers");
    assert_eq!(
        consumers,
        usage_table(&output(&h, &["usage", "--top", "25"]))
    );
    let expected = by_the_rule(&snapshots);
    let mut per_key: BTreeMap<i64, i64> = BTreeMap::new();
    for u in &expected {
        *per_key.entry(u.id).or_default() += u.used;
    }
    let steady_used = per_key[&steady];
    assert_eq!(steady_used, 1_500 * 81 + 4_321);
    let steady_row = consumers
        .iter()
        .find(|row| row[0] == steady.to_string())
        .unwrap();
    assert_eq!(steady_row[1], HOSTILE_NAME, "the name is text, not markup");
    assert_eq!(steady_row[2], grouped(steady_used));
    assert_eq!(steady_row[3], dollars(steady_used, 500_000));
    assert_eq!(consumers.len(), per_key.len());
    assert_eq!(
        page.select(&sel("b")).count(),
        0,
        "no markup from a key name"
    );

    // The daily bars: one per UTC day of the window, titled with the day's total in quota
    // and dollars, which are the per-day sums of `usage --every day`.
    let (_, daily) = csv_rows(&output(&h, &["usage", "--every", "day", "--format", "csv"]));
    let mut per_day: BTreeMap<String, i64> = BTreeMap::new();
    for row in &daily {
        *per_day.entry(row[0].clone()).or_default() += row[3].parse::<i64>().unwrap();
    }
    let mut by_rule: BTreeMap<String, i64> = BTreeMap::new();
    for u in &expected {
        *by_rule.entry(day_of(u.at)).or_default() += u.used;
    }
    assert_eq!(per_day, by_rule);
    let titles: Vec<String> = page
        .select(&sel("section#usage svg.wide g.bar > title"))
        .map(text_of)
        .collect();
    assert_eq!(titles.len(), 31, "(now - 30d, now] touches 31 UTC days");
    // The narrow drawing, for phones, has the same bars.
    assert_eq!(
        texts(&page, "section#usage svg.narrow g.bar > title"),
        titles
    );
    let first_day = now() - 30 * DAY + 1;
    // Days with use to show: those of the good pulls after the first.
    let pulled: Vec<String> = (1..10).map(|d| day_of(pull_time(d))).collect();
    for (d, title) in titles.iter().enumerate() {
        let day = day_of(first_day + d as i64 * DAY);
        let used = per_day.get(&day).copied().unwrap_or(0);
        let want = if pulled.contains(&day) {
            format!("{day}: {} quota, {}", grouped(used), dollars(used, 500_000))
        } else {
            assert_eq!(used, 0, "{day}");
            format!("{day}: no data (no good sync on this day)")
        };
        assert_eq!(*title, want);
    }
    assert_eq!(
        texts(&page, "section#usage svg.wide g.bar.no-data > title").len(),
        31 - 9
    );
    // Six keys used something: six series, no "others", each in the legend with its total,
    // then the legend of no data and of a failed pull.
    let legend: Vec<String> = page
        .select(&sel("section#usage .legend li"))
        .map(text_of)
        .collect();
    assert_eq!(legend.len(), 8);
    assert_eq!(
        legend[0],
        format!(
            "{} (#{}): {}",
            consumers[0][1], consumers[0][0], consumers[0][3]
        )
    );
    assert_eq!(legend[6..], ["no data", "a pull failed"]);

    // Status: one bar per good sync in the window, the counts judged at each.
    let bars: Vec<String> = page
        .select(&sel("section#status svg.wide g.bar > title"))
        .map(text_of)
        .collect();
    let live = [4, 4, 4, 5, 5, 6, 7, 6, 6, 6];
    let mut want: Vec<String> = good[..10]
        .iter()
        .zip(live)
        .map(|(&(id, at), keys)| {
            format!(
                "sync {id} ({}): {keys} enabled, 0 disabled, 0 expired, 0 exhausted, 0 unknown",
                readable(at)
            )
        })
        .collect();
    want.push(format!(
        "sync {latest} ({}): 3 enabled, 1 disabled, 1 expired, 1 exhausted, 0 unknown",
        readable(latest_at)
    ));
    assert_eq!(bars, want);
    assert_eq!(
        table_rows(&page, "table#status-now"),
        [
            ["enabled", "3"],
            ["disabled", "1"],
            ["expired", "1"],
            ["exhausted", "1"],
            ["unknown", "0"]
        ]
    );

    // Expiring and exposed: the reports' own rows.
    let (head, expiring) = csv_rows(&output(
        &h,
        &[
            "query",
            "--report",
            "expiring-soon",
            "--within",
            "14d",
            "--format",
            "csv",
        ],
    ));
    // Expiring: the report's rows of keys still to expire, then those past their expiry in
    // a folded list.
    // Without the report's is_expired flag, which where a key stands says.
    let flagless = |rows: &[Vec<String>]| -> Vec<Vec<String>> {
        rows.iter().map(|r| r[..r.len() - 1].to_vec()).collect()
    };
    assert_eq!(head.last().unwrap(), "is_expired");
    assert_eq!(
        table_head(&page, "table#expiring-keys"),
        head[..head.len() - 1]
    );
    assert_eq!(
        table_rows(&page, "table#expiring-keys"),
        flagless(&expiring[1..])
    );
    assert_eq!(
        table_rows(&page, "details#expired table#expired-keys"),
        flagless(&expiring[..1])
    );
    assert_eq!(
        texts(&page, "details#expired summary"),
        [
            "1 key expired but still enabled (upstream marks a key expired only when it is next used)"
        ]
    );
    let expiring_ids: Vec<(String, String)> = expiring
        .iter()
        .map(|row| (row[0].clone(), row[3].clone()))
        .collect();
    assert_eq!(
        expiring_ids,
        [
            (latecomer.to_string(), "-1.0".to_string()),
            (idle.to_string(), "3.0".to_string())
        ]
    );
    // Exposed: the enabled keys with unlimited quota and no IP allowlist: none here, whose
    // keys all have a limit.
    let (_, unrestricted) = csv_rows(&output(
        &h,
        &["query", "--report", "unrestricted", "--format", "csv"],
    ));
    assert_eq!(unrestricted.len(), 5);
    assert_eq!(
        texts(&page, "#exposed-count"),
        [
            "0 enabled keys with unlimited quota and no IP allowlist, the most spent in the window \
          first (all the risks of each: keysync query --report unrestricted)."
        ]
    );
    assert_eq!(page.select(&sel("table#exposed-keys")).count(), 0);

    // Changes: the window's net diff counted as `keysync diff` has it, then the latest
    // changes, newest first, without the use counters.
    let first = good[0].0;
    let (_, diff) = csv_rows(&output(
        &h,
        &[
            "diff",
            &first.to_string(),
            &latest.to_string(),
            "--format",
            "csv",
        ],
    ));
    let keys_of = |kind: &str| {
        let mut ids: Vec<&String> = diff
            .iter()
            .filter(|r| r[0] == kind)
            .map(|r| &r[1])
            .collect();
        ids.dedup();
        ids.len()
    };
    assert_eq!(
        (keys_of("added"), keys_of("changed"), keys_of("removed")),
        (3, 3, 1)
    );
    let summary = text_of(page.select(&sel("#changes-summary")).next().unwrap());
    assert!(
        summary.contains(": 3 added, 3 changed, 1 removed (keys;"),
        "{summary}"
    );
    let per_field: BTreeMap<String, String> = table_rows(&page, "table#changes-per-field")
        .into_iter()
        .map(|row| (row[0].clone(), row[1].clone()))
        .collect();
    let field_keys = |field: &str| diff.iter().filter(|r| r[4] == field).count().to_string();
    for (field, keys) in &per_field {
        assert_eq!(*keys, field_keys(field), "{field}");
    }
    assert_eq!(per_field["name"], "1");
    assert_eq!(per_field["used_quota"], "2");
    let recent = table_rows(&page, "table#recent-changes");
    let newest: Vec<(String, String, String)> = recent
        .iter()
        .filter(|row| row[0] == latest.to_string())
        .map(|row| (row[3].clone(), row[5].clone(), row[7].clone()))
        .collect();
    assert_eq!(
        newest,
        [
            (steady.to_string(), "name".into(), HOSTILE_NAME.into()),
            (refunded.to_string(), "status".into(), "disabled".into()),
            (
                idle.to_string(),
                "expired_time".into(),
                readable(now() + 3 * DAY)
            ),
            (
                latecomer.to_string(),
                "expired_time".into(),
                readable(now() - DAY)
            ),
        ]
    );
    assert!(
        recent
            .iter()
            .all(|row| !["used_quota", "remain_quota", "accessed_time"].contains(&row[5].as_str()))
    );

    // A `--now` in the past ends the window there: the use, and the changes, up to pull 5
    // (newcomer and before-failure added; steady, refunded and removed used quota).
    let then = (pull_time(5) + HOUR).to_string();
    let earlier = h.dir.path().join("earlier.html");
    run(
        h.keysync()
            .args(["html", "-q", "--now", &then, "--out"])
            .arg(&earlier),
        0,
    );
    let earlier = Html::parse_document(&std::fs::read_to_string(&earlier).unwrap());
    let usage_then = run(h.keysync().args(["usage", "--now", &then]), 0).stdout;
    assert_eq!(
        table_rows(&earlier, "table#top-consumers"),
        usage_table(&usage_then)
    );
    let pull_5 = good[5];
    let summary = text_of(earlier.select(&sel("#changes-summary")).next().unwrap());
    assert!(
        summary.starts_with(&format!(
            "From sync {first} ({}) to sync {} ({}): 2 added, 3 changed, 0 removed",
            readable(good[0].1),
            pull_5.0,
            readable(pull_5.1)
        )),
        "{summary}"
    );

    // --quota-per-unit prices the page as it prices `usage`.
    let priced = Html::parse_document(&html(&h, &["--quota-per-unit", "1000"]));
    let usage_priced = output(&h, &["usage", "--quota-per-unit", "1000"]);
    let priced_rows = table_rows(&priced, "table#top-consumers");
    assert_eq!(priced_rows, usage_table(&usage_priced));
    let (_, exact) = csv_rows(&output(
        &h,
        &["usage", "--quota-per-unit", "1000", "--format", "csv"],
    ));
    assert_eq!(
        exact[0][3],
        format!("{:?}", usd(exact[0][2].parse().unwrap(), 1000))
    );
    assert_eq!(
        priced_rows[0][3],
        dollars(exact[0][2].parse().unwrap(), 1000)
    );
}

/// The key rows of `usage`'s table: without its header, its totals row and its trend column.
fn usage_table(table: &str) -> Vec<Vec<String>> {
    let cells = table_cells(table);
    cells[1..cells.len() - 1]
        .iter()
        .map(|row| row[..row.len() - 1].to_vec())
        .collect()
}

/// `2025-12-19 01:00:00Z`, as the page writes times.
fn readable(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .unwrap()
        .format("%Y-%m-%d %H:%M:%SZ")
        .to_string()
}

#[test]
fn a_window_without_use_says_so_instead_of_drawing_an_empty_chart() {
    let h = Harness::with_keys(3);
    h.pull(&[]);
    let out = h.dir.path().join("empty.html");
    run(h.keysync().args(["html", "-q", "--out"]).arg(&out), 0);
    let page = Html::parse_document(&std::fs::read_to_string(&out).unwrap());
    let usage = page.select(&sel("section#usage")).next().unwrap();
    assert_eq!(usage.select(&sel("svg")).count(), 0);
    assert_eq!(
        text_of(usage.select(&sel("p.empty")).next().unwrap()),
        "No use recorded in this window."
    );
    // The one sync still shows the keys' status; there is nothing to compare yet.
    assert_eq!(
        page.select(&sel("section#status svg.wide g.bar")).count(),
        1
    );
    let changes = text_of(page.select(&sel("section#changes p.empty")).next().unwrap());
    assert_eq!(
        changes,
        "Nothing to compare: the window needs two good syncs."
    );
}

#[test]
fn a_page_that_cannot_be_written_is_a_usage_error_and_leaves_no_file() {
    let h = Harness::with_keys(2);
    h.pull(&[]);
    let missing = h.dir.path().join("no-such-folder").join("report.html");
    let refused = run(h.keysync().args(["html", "--out"]).arg(&missing), 2);
    assert_eq!(
        refused.stderr,
        format!(
            "keysync: error: cannot write --out {}: the folder {} does not exist; create it \
             first or pick another path\n",
            missing.display(),
            missing.parent().unwrap().display()
        )
    );
    assert!(refused.stdout.is_empty());
    assert!(!missing.parent().unwrap().exists());

    // A failure after the temporary file was made (no database) leaves neither it nor FILE,
    // and an earlier page at FILE keeps its contents.
    let folder = tempfile::tempdir().unwrap();
    let out = folder.path().join("report.html");
    run(h.keysync().args(["html", "-q", "--out"]).arg(&out), 0);
    let earlier = std::fs::read_to_string(&out).unwrap();
    let no_db = h.dir.path().join("absent.db");
    run(
        h.keysync()
            .args(["html", "--out"])
            .arg(&out)
            .arg("--db")
            .arg(&no_db),
        6,
    );
    let left: Vec<_> = std::fs::read_dir(folder.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["report.html"]);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), earlier);

    // A window that ends before it starts.
    let late = run(
        h.keysync()
            .args(["html", "--since", "2999-01-01T00:00:00Z", "--out"])
            .arg(&out),
        2,
    );
    assert!(late.stderr.contains("is not before now"), "{}", late.stderr);
}
