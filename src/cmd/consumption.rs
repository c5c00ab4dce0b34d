//! The rows `keysync usage` prints and `keysync html` tabulates, shaped from the facts of
//! `facts::spend`: totals per key with dollars and shares, rows per day, week or month, and the
//! columns people read them in. Both commands show the same numbers.
//!
//! `usd` is the window's dollars rounded to 6 decimals and `share` a percentage rounded to 2,
//! both REAL, as docs/guide.md's "Usage and dollars" states.

use std::collections::HashMap;

use chrono::NaiveDate;
use rusqlite::types::Value;

use crate::error::Result;
use crate::facts::spend::{KeyUse, Period, Spend, Window, key_totals, round};
use crate::output::{Column, ColumnKind, NAME_WIDTH};

/// One row per key with use, largest first (then by id); `top` keeps the first rows. With a
/// window (the `table` format), each row gains its trend and a totals row ends the table.
pub(crate) fn per_key(
    uses: &[KeyUse],
    top: Option<usize>,
    window: Option<&Window>,
) -> Result<Vec<Vec<Value>>> {
    let mut keys = key_totals(uses)?;
    let total = Spend::of(uses)?;
    keys.truncate(top.unwrap_or(usize::MAX));
    let share = |used: i64| match total.used() {
        0 => Value::Null,
        all => Value::Real(round(used as f64 * 100.0 / all as f64, 2)),
    };
    let mut by_key: HashMap<i64, Vec<&KeyUse>> = HashMap::new();
    for u in uses {
        by_key.entry(u.key_id).or_default().push(u);
    }
    let mut rows: Vec<Vec<Value>> = keys
        .iter()
        .map(|k| {
            let mut row = vec![
                Value::Integer(k.id),
                k.name.clone().map_or(Value::Null, Value::Text),
                Value::Integer(k.spend.used()),
                k.spend.usd(),
                share(k.spend.used()),
            ];
            if let Some(window) = window {
                let mine = by_key.get(&k.id).into_iter().flatten().copied();
                row.push(Value::Text(window.sparkline(mine)?));
            }
            Ok(row)
        })
        .collect::<Result<_>>()?;
    if let Some(window) = window {
        rows.push(vec![
            Value::Null,
            Value::Text("total".to_string()),
            Value::Integer(total.used()),
            total.usd(),
            share(total.used()),
            Value::Text(window.sparkline(uses.iter())?),
        ]);
    }
    Ok(rows)
}

/// One row per period and key whose use there is not zero: by period, then use (largest
/// first), then id.
pub(crate) fn per_period(uses: &[KeyUse], period: Period) -> Result<Vec<Vec<Value>>> {
    let mut totals: HashMap<(NaiveDate, i64), (Option<String>, Spend)> = HashMap::new();
    for u in uses {
        totals
            .entry((period.start(u.day), u.key_id))
            .or_insert_with(|| (u.name.clone(), Spend::default()))
            .1
            .add(u)?;
    }
    let mut rows: Vec<_> = totals
        .into_iter()
        .filter(|(_, (_, spend))| spend.used() != 0)
        .collect();
    rows.sort_by(|((pa, ia), (_, sa)), ((pb, ib), (_, sb))| {
        pa.cmp(pb).then(sb.used().cmp(&sa.used())).then(ia.cmp(ib))
    });
    Ok(rows
        .into_iter()
        .map(|((start, id), (name, spend))| {
            vec![
                Value::Text(start.format("%Y-%m-%d").to_string()),
                Value::Integer(id),
                name.map_or(Value::Null, Value::Text),
                Value::Integer(spend.used()),
                spend.usd(),
            ]
        })
        .collect())
}

/// The columns of [`per_key`]'s rows (without the trend), what people read in them, and what
/// a narrow terminal gives up first: the share, then the name's end.
pub(crate) fn per_key_columns() -> Vec<Column> {
    vec![
        Column::new("id", ColumnKind::Plain).whole(1),
        Column::new("name", ColumnKind::Plain).cut(1, NAME_WIDTH),
        Column::new("used", ColumnKind::Quota).whole(1),
        Column::new("usd", ColumnKind::Dollars).whole(1),
        Column::new("share", ColumnKind::Share).whole(3),
    ]
}

/// The `trend` column `usage`'s table adds to [`per_key_columns`]: a sparkline of each key's
/// daily use, kept before the share.
pub(crate) fn trend_column() -> Column {
    Column::new("trend", ColumnKind::Plain).whole(2)
}

/// The columns of [`per_period`]'s rows.
pub(crate) fn per_period_columns() -> Vec<Column> {
    vec![
        Column::new("period", ColumnKind::Plain).whole(1),
        Column::new("id", ColumnKind::Plain).whole(1),
        Column::new("name", ColumnKind::Plain).cut(2, NAME_WIDTH),
        Column::new("used", ColumnKind::Quota).whole(1),
        Column::new("usd", ColumnKind::Dollars).whole(1),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::spend::tests::{DAY, MONDAY, priced, use_of};

    #[test]
    fn money_rounds_to_six_decimals_and_shares_to_two() {
        assert_eq!(
            Spend::of(&[use_of(MONDAY, 1, 1)]).unwrap().usd(),
            Value::Real(0.333333)
        );
        let rows = per_key(&[use_of(MONDAY, 1, 1), use_of(MONDAY, 2, 2)], None, None).unwrap();
        assert_eq!(rows[0][4], Value::Real(66.67));
        assert_eq!(rows[1][4], Value::Real(33.33));
    }

    #[test]
    fn each_price_converts_its_own_quota_and_refunds_are_negative_rows_listed_last() {
        // Key 1: 1,000,000 at 500,000 a dollar, then 1,000,000 at 250,000: $2 + $4.
        // Key 2: 30 used, then 40 refunded: a net refund of 10.
        let uses = [
            priced(MONDAY, 1, 1_000_000, 500_000),
            priced(MONDAY, 2, 30, 500_000),
            priced(MONDAY + DAY, 1, 1_000_000, 250_000),
            priced(MONDAY + DAY, 2, -40, 250_000),
        ];
        let rows = per_key(&uses, None, None).unwrap();
        assert_eq!(
            rows[0][..4],
            [
                Value::Integer(1),
                Value::Text("k1".into()),
                Value::Integer(2_000_000),
                Value::Real(6.0)
            ]
        );
        assert_eq!(
            rows[1][..4],
            [
                Value::Integer(2),
                Value::Text("k2".into()),
                Value::Integer(-10),
                Value::Real(-0.0001)
            ]
        );
        let days = per_period(&uses, Period::Day).unwrap();
        assert_eq!(days.len(), 4);
        assert_eq!(days[3][3..], [Value::Integer(-40), Value::Real(-0.00016)]);
    }
}
