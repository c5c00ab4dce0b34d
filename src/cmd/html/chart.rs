//! Stacked bar charts as inline SVG: a y axis with ticks at round numbers and their labels, a
//! date under every few bars, and a `<title>` per bar and per segment (the browser's tooltip).
//! Colours are CSS classes, so the page's light, dark and print styles decide them. The SVG
//! has a `viewBox` and no fixed size: it scales to the width of the page.

use std::fmt::Write;

use super::page::escape;
use crate::output::thousands;

/// The drawing's coordinate system; the page scales it to its width.
const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 300.0;
const LEFT: f64 = 78.0;
const RIGHT: f64 = 30.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 52.0;
/// The plot area: the drawing inside the margins.
const PLOT_W: f64 = WIDTH - LEFT - RIGHT;
const PLOT_H: f64 = HEIGHT - TOP - BOTTOM;
/// At most this many labels under the x axis, so they never run into each other.
const MAX_X_LABELS: usize = 6;

/// One bar: its label under the axis, its tooltip, and its segments bottom first.
pub(super) struct Bar {
    pub label: String,
    pub title: String,
    /// `(value, css class, tooltip)`; zero values draw nothing, negative ones (refunds) stack
    /// down from zero.
    pub segments: Vec<(f64, String, String)>,
}

impl Bar {
    /// The height of its stack on one side of zero: `1.0` the positive values, `-1.0` the
    /// negative ones.
    fn stacked(&self, side: f64) -> f64 {
        let segments = self.segments.iter().map(|s| s.0);
        segments.filter(|value| value * side > 0.0).sum()
    }
}

/// A stacked bar chart: the bars, what the y axis measures, and how its ticks read.
pub(super) struct BarChart<'a> {
    /// What the chart shows, for screen readers.
    pub description: &'a str,
    /// Written above the y axis, e.g. `US dollars per day`.
    pub y_title: &'a str,
    /// Written under the x axis, e.g. `day (UTC)`.
    pub x_title: &'a str,
    pub bars: Vec<Bar>,
    /// Tick labels: the value and the step between ticks.
    pub tick_label: &'a dyn Fn(f64, f64) -> String,
    /// Whether ticks must be whole numbers (counts).
    pub whole: bool,
}

impl BarChart<'_> {
    pub(super) fn svg(&self) -> String {
        let scale = self.scale();
        let mut svg = String::new();
        let _ = write!(
            svg,
            r#"<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}" preserveAspectRatio="xMidYMid meet">"#,
            escape(self.description)
        );
        self.write_axis_titles(&mut svg);
        self.write_ticks(&mut svg, &scale);
        let slot = PLOT_W / self.bars.len().max(1) as f64;
        let every = self.bars.len().div_ceil(MAX_X_LABELS).max(1);
        for (i, bar) in self.bars.iter().enumerate() {
            let x = LEFT + slot * i as f64;
            bar.write(&mut svg, &scale, x, slot);
            // Label every few bars, counted back from the last so the latest is named.
            if (self.bars.len() - 1 - i).is_multiple_of(every) {
                let _ = write!(
                    svg,
                    r#"<text class="tick" x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                    x + slot / 2.0,
                    TOP + PLOT_H + 24.0,
                    escape(&bar.label)
                );
            }
        }
        let _ = write!(
            svg,
            r#"<line class="axis" x1="{LEFT}" x2="{}" y1="{:.1}" y2="{:.1}"/></svg>"#,
            WIDTH - RIGHT,
            scale.y(0.0),
            scale.y(0.0)
        );
        svg
    }

    /// The y axis for these bars. Refunds are negative use: they stack down from zero, so the
    /// axis spans both stacks.
    fn scale(&self) -> Scale {
        let highest = self.bars.iter().map(|b| b.stacked(1.0)).fold(0.0, f64::max);
        let lowest = self
            .bars
            .iter()
            .map(|b| b.stacked(-1.0))
            .fold(0.0, f64::min);
        let step = nice_step(highest - lowest, self.whole);
        Scale {
            top: (highest / step).ceil().max(1.0) * step,
            bottom: (lowest / step).floor() * step,
            step,
        }
    }

    fn write_axis_titles(&self, svg: &mut String) {
        let _ = write!(
            svg,
            r#"<text class="axis-title" x="{}" y="{}">{}</text>"#,
            LEFT - 60.0,
            TOP - 14.0,
            escape(self.y_title)
        );
        let _ = write!(
            svg,
            r#"<text class="axis-title" x="{}" y="{}" text-anchor="end">{}</text>"#,
            WIDTH - RIGHT,
            HEIGHT - 3.0,
            escape(self.x_title)
        );
    }

    /// A grid line and a label at every tick of the y axis.
    fn write_ticks(&self, svg: &mut String, scale: &Scale) {
        let ticks = ((scale.top - scale.bottom) / scale.step).round() as usize;
        for i in 0..=ticks {
            let value = scale.bottom + scale.step * i as f64;
            let at = scale.y(value);
            let _ = write!(
                svg,
                r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{at:.1}" y2="{at:.1}"/><text class="tick" x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
                WIDTH - RIGHT,
                LEFT - 6.0,
                at + 5.0,
                escape(&(self.tick_label)(value, scale.step))
            );
        }
    }
}

impl Bar {
    /// The bar in the `slot` wide from `x`: a target as tall as the plot for its tooltip, then
    /// its segments, stacked up from zero (use) or down from it (refunds).
    fn write(&self, svg: &mut String, scale: &Scale, x: f64, slot: f64) {
        let bar_w = (slot * 0.72).min(48.0);
        let _ = write!(
            svg,
            r#"<g class="bar"><title>{}</title><rect class="hit" x="{x:.1}" y="{TOP}" width="{slot:.1}" height="{PLOT_H}"/>"#,
            escape(&self.title)
        );
        let (mut above, mut below) = (0.0, 0.0);
        for (value, class, title) in &self.segments {
            let base = match *value {
                v if v > 0.0 => &mut above,
                v if v < 0.0 => &mut below,
                _ => continue,
            };
            let (from, to) = (scale.y(*base), scale.y(*base + value));
            *base += value;
            let (low, high) = (from.max(to), from.min(to));
            let _ = write!(
                svg,
                r#"<rect class="{class}" x="{:.1}" y="{high:.2}" width="{bar_w:.1}" height="{:.2}"><title>{}</title></rect>"#,
                x + (slot - bar_w) / 2.0,
                (low - high).max(0.5),
                escape(title)
            );
        }
        svg.push_str("</g>");
    }
}

/// The y axis: from `bottom` to `top`, both whole ticks, `step` apart.
struct Scale {
    bottom: f64,
    top: f64,
    step: f64,
}

impl Scale {
    /// The drawing's y of `value`.
    fn y(&self, value: f64) -> f64 {
        TOP + PLOT_H - (value - self.bottom) / (self.top - self.bottom) * PLOT_H
    }
}

/// A step of 1, 2 or 5 times a power of ten that splits `highest` into about four ticks;
/// at least 1 for whole counts.
fn nice_step(highest: f64, whole: bool) -> f64 {
    if highest <= 0.0 {
        return 1.0;
    }
    let raw = highest / 4.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        n if n <= 1.0 => magnitude,
        n if n <= 2.0 => 2.0 * magnitude,
        n if n <= 5.0 => 5.0 * magnitude,
        _ => 10.0 * magnitude,
    };
    if whole { step.max(1.0).round() } else { step }
}

/// `$0.05`, `$1,500`, `-$0.02`: dollars with as many decimals as the step between ticks needs
/// (an axis of tenths of a cent needs them all), the thousands separated as in the tables.
pub(super) fn dollars(value: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 8.0) as usize;
    let amount = format!("{:.decimals$}", value.abs());
    // A tick that rounds to zero is `$0`, never `-$0`.
    let below_zero = value < 0.0 && amount.bytes().any(|b| matches!(b, b'1'..=b'9'));
    let sign = if below_zero { "-" } else { "" };
    format!("{sign}${}", thousands(&amount))
}

/// A whole count.
pub(super) fn count(value: f64, _step: f64) -> String {
    format!("{value:.0}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round_and_labels_carry_the_decimals_they_need() {
        assert_eq!(nice_step(0.0, false), 1.0);
        assert_eq!(nice_step(10.0, false), 5.0);
        assert_eq!(nice_step(0.07, false), 0.02);
        assert_eq!(nice_step(3.0, true), 1.0);
        assert_eq!(nice_step(130.0, true), 50.0);
        assert_eq!(dollars(0.04, 0.02), "$0.04");
        assert_eq!(dollars(15.0, 5.0), "$15");
        assert_eq!(dollars(0.0025, 0.0005), "$0.0025");
        assert_eq!(dollars(1500.0, 500.0), "$1,500");
        assert_eq!(dollars(-0.02, 0.01), "-$0.02");
        assert_eq!(dollars(-0.0, 0.01), "$0.00");
    }

    #[test]
    fn negative_segments_stack_below_a_zero_axis_with_negative_ticks() {
        let bar = |segments: Vec<f64>| Bar {
            label: String::new(),
            title: String::new(),
            segments: segments
                .into_iter()
                .map(|v| (v, "s0".to_string(), String::new()))
                .collect(),
        };
        let chart = BarChart {
            description: "test",
            y_title: "y",
            x_title: "x",
            bars: vec![bar(vec![3.0, -1.0, 2.0]), bar(vec![-2.0])],
            tick_label: &dollars,
            whole: false,
        };
        let svg = chart.svg();
        let ticks: Vec<&str> = svg
            .split(r#"text-anchor="end">"#)
            .skip(2)
            .map(|t| t.split('<').next().unwrap())
            .collect();
        // Up to 5 and down to 2: a step of 2, from -$2 to $6.
        assert_eq!(ticks, ["-$2", "$0", "$2", "$4", "$6"]);
        // The plot's 220 units span $8: zero sits a quarter up from its bottom at 248.
        assert!(svg.ends_with(r#"y1="193.0" y2="193.0"/></svg>"#), "{svg}");
        // $1 is 27.5 units: the 3 and the 2 stack up from zero, the -1 and the -2 hang from it.
        let rects: Vec<&str> = svg
            .split(r#"<rect class="s0" "#)
            .skip(1)
            .map(|r| r.split("><title>").next().unwrap())
            .collect();
        assert_eq!(
            rects,
            [
                r#"x="187.0" y="110.50" width="48.0" height="82.50""#,
                r#"x="187.0" y="193.00" width="48.0" height="27.50""#,
                r#"x="187.0" y="55.50" width="48.0" height="55.00""#,
                r#"x="453.0" y="193.00" width="48.0" height="55.00""#,
            ]
        );
    }

    #[test]
    fn every_bar_has_its_title_and_only_some_their_label() {
        let bars = (0..10)
            .map(|i| Bar {
                label: format!("d{i}"),
                title: format!("t{i}"),
                segments: vec![(f64::from(i), "s0".into(), format!("seg{i}"))],
            })
            .collect();
        let chart = BarChart {
            description: "test",
            y_title: "y",
            x_title: "x",
            bars,
            tick_label: &count,
            whole: true,
        };
        let svg = chart.svg();
        assert_eq!(svg.matches(r#"<g class="bar"><title>"#).count(), 10);
        // Bar 0 has a value of 0: no segment.
        assert_eq!(svg.matches("<title>seg").count(), 9);
        // Every second bar is labelled, the last one included.
        assert!(svg.contains(">d9</text>") && svg.contains(">d7</text>"));
        assert!(!svg.contains(">d8</text>"));
    }
}
