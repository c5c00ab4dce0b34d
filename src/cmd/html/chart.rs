//! Stacked bar charts as inline SVG: a y axis with ticks at round numbers and their labels, a
//! date under every few bars, and a `<title>` per bar and per segment (the browser's tooltip).
//! A day without data is drawn as such (`no-data`), never as a zero, and a failed pull is
//! marked on its day (`failed-pull`). Colours are CSS classes, so the page's light, dark and
//! print styles decide them. Tooltips name keys: they go in as [`Shown`], as every name does.
//! The SVG has a `viewBox` and no fixed size: it takes the width of the page.

use maud::{Markup, html};

use super::page::Shown;
use crate::output::thousands;

/// A drawing's coordinate system and margins; the page scales it to its width. A page draws
/// each chart twice: [`WIDE`] for screens and paper, [`NARROW`] for phones (the page's style
/// shows one), so that a phone's chart is tall enough and its labels big enough to read.
#[derive(Clone, Copy, Debug)]
pub(super) struct Frame {
    /// Its CSS class.
    pub class: &'static str,
    width: f64,
    height: f64,
    left: f64,
    right: f64,
    top: f64,
    bottom: f64,
    /// At most this many labels under the x axis, so they never run into each other.
    labels: usize,
    /// The height of a label's text, in the drawing's units (the style sets the same).
    text: f64,
}

pub(super) const WIDE: Frame = Frame {
    class: "wide",
    width: 960.0,
    height: 340.0,
    left: 84.0,
    right: 28.0,
    top: 48.0,
    bottom: 64.0,
    labels: 8,
    text: 15.0,
};

pub(super) const NARROW: Frame = Frame {
    class: "narrow",
    width: 480.0,
    height: 380.0,
    left: 84.0,
    right: 34.0,
    top: 48.0,
    bottom: 70.0,
    labels: 4,
    text: 22.0,
};

impl Frame {
    /// The plot area's width and height: the drawing inside the margins.
    fn plot_w(&self) -> f64 {
        self.width - self.left - self.right
    }

    fn plot_h(&self) -> f64 {
        self.height - self.top - self.bottom
    }
}

/// One bar: its label under the axis, its tooltip, and its segments bottom first.
pub(super) struct Bar {
    pub label: String,
    pub title: String,
    /// `(value, css class, tooltip)`; zero values draw nothing, negative ones (refunds) stack
    /// down from zero.
    pub segments: Vec<(f64, String, String)>,
    /// Nothing is known of this bar (a day without a good sync): drawn as such, not as zero.
    pub no_data: bool,
    /// The tooltip of a failed pull on this bar's day, marked above it.
    pub failed: Option<String>,
}

impl Bar {
    /// A bar of `segments`, with data and no failed pull.
    pub(super) fn new(label: String, title: String, segments: Vec<(f64, String, String)>) -> Bar {
        Bar {
            label,
            title,
            segments,
            no_data: false,
            failed: None,
        }
    }

    /// The height of its stack on one side of zero: `1.0` the positive values, `-1.0` the
    /// negative ones.
    fn stacked(&self, side: f64) -> f64 {
        let segments = self.segments.iter().map(|s| s.0);
        segments.filter(|value| value * side > 0.0).sum()
    }
}

/// A stacked bar chart.
pub(super) struct BarChart<'a> {
    /// The chart's accessible name.
    pub description: &'a str,
    /// Written above the y axis, e.g. `US dollars per day`.
    pub y_title: &'a str,
    /// Written under the x axis, e.g. `day (UTC)`.
    pub x_title: &'a str,
    pub bars: Vec<Bar>,
    /// Tick labels: the value and the step between ticks.
    pub tick_label: &'a dyn Fn(f64, f64) -> String,
    /// The smallest step between ticks: a cent for dollars, 1 for counts.
    pub least_step: f64,
}

/// A number as an SVG coordinate.
fn at(value: f64) -> String {
    format!("{value:.1}")
}

impl BarChart<'_> {
    pub(super) fn svg(&self, f: Frame) -> Markup {
        let scale = self.scale(f);
        let slot = f.plot_w() / self.bars.len().max(1) as f64;
        let every = self.bars.len().div_ceil(f.labels).max(1);
        let zero = at(scale.y(0.0));
        html! {
            svg class=(format!("chart {}", f.class)) viewBox=(format!("0 0 {} {}", f.width, f.height)) role="img"
                aria-label=(self.description) preserveAspectRatio="xMidYMid meet" {
                text.axis-title x=(at(8.0)) y=(at(f.top - f.text - 4.0)) { (self.y_title) }
                text.axis-title x=(at(f.width - f.right)) y=(at(f.height - 4.0)) text-anchor="end" {
                    (self.x_title)
                }
                (self.ticks(&scale, f))
                @for (i, bar) in self.bars.iter().enumerate() {
                    (bar.svg(&scale, f.left + slot * i as f64, slot))
                    // Label every few bars, counted back from the last so the latest is named.
                    @if (self.bars.len() - 1 - i).is_multiple_of(every) {
                        text.tick x=(at(f.left + slot * (i as f64 + 0.5)))
                            y=(at(f.top + f.plot_h() + f.text * 1.6))
                            text-anchor="middle" { (bar.label) }
                    }
                }
                line.axis x1=(at(f.left)) x2=(at(f.width - f.right)) y1=(zero) y2=(zero) {}
            }
        }
    }

    /// The y axis for these bars. Refunds are negative use: they stack down from zero, so the
    /// axis spans both stacks.
    fn scale(&self, frame: Frame) -> Scale {
        let highest = self.bars.iter().map(|b| b.stacked(1.0)).fold(0.0, f64::max);
        let lowest = self
            .bars
            .iter()
            .map(|b| b.stacked(-1.0))
            .fold(0.0, f64::min);
        let step = nice_step(highest - lowest, self.least_step);
        Scale {
            frame,
            top: (highest / step).ceil().max(1.0) * step,
            bottom: (lowest / step).floor() * step,
            step,
        }
    }

    /// A grid line and a label at every tick of the y axis.
    fn ticks(&self, scale: &Scale, f: Frame) -> Markup {
        let ticks = ((scale.top - scale.bottom) / scale.step).round() as usize;
        html! {
            @for i in 0..=ticks {
                @let value = scale.bottom + scale.step * i as f64;
                @let y = scale.y(value);
                line.grid x1=(at(f.left)) x2=(at(f.width - f.right)) y1=(at(y)) y2=(at(y)) {}
                text.tick x=(at(f.left - 8.0)) y=(at(y + f.text * 0.35)) text-anchor="end" {
                    ((self.tick_label)(value, scale.step))
                }
            }
        }
    }
}

impl Bar {
    /// The bar in the `slot` wide from `x`: a target as tall as the plot for its tooltip, then
    /// its segments, stacked up from zero (use) or down from it (refunds); or, without data,
    /// the whole slot hatched.
    fn svg(&self, scale: &Scale, x: f64, slot: f64) -> Markup {
        let (top, plot_h) = (scale.frame.top, scale.frame.plot_h());
        let bar_w = (slot * 0.74).min(56.0);
        let bar_x = at(x + (slot - bar_w) / 2.0);
        html! {
            g.bar.no-data[self.no_data] {
                title { (Shown(&self.title)) }
                rect.hit x=(at(x)) y=(at(top)) width=(at(slot)) height=(at(plot_h)) {}
                @if self.no_data {
                    rect.no-data-fill x=(bar_x) y=(at(top)) width=(at(bar_w)) height=(at(plot_h)) {}
                }
                @for (class, top, height, title) in self.stack(scale) {
                    rect class=(class) x=(bar_x) y=(format!("{top:.2}")) width=(at(bar_w))
                        height=(format!("{height:.2}")) { title { (Shown(title)) } }
                }
                @if let Some(failed) = &self.failed {
                    g.failed-pull {
                        title { (Shown(failed)) }
                        path d=(format!("M{:.1},{:.1} l-8,-14 h16 z", x + slot / 2.0, top - 2.0)) {}
                    }
                }
            }
        }
    }

    /// Its segments as drawn: `(class, top, height, title)`, stacked up from zero (use) or
    /// down from it (refunds); zero values draw nothing.
    fn stack(&self, scale: &Scale) -> Vec<(&str, f64, f64, &str)> {
        let (mut above, mut below) = (0.0, 0.0);
        let mut drawn = Vec::new();
        for (value, class, title) in &self.segments {
            let base = match *value {
                v if v > 0.0 => &mut above,
                v if v < 0.0 => &mut below,
                _ => continue,
            };
            let (from, to) = (scale.y(*base), scale.y(*base + value));
            *base += value;
            let height = (from - to).abs().max(0.5);
            drawn.push((class.as_str(), from.min(to), height, title.as_str()));
        }
        drawn
    }
}

/// The y axis: from `bottom` to `top`, both whole ticks, `step` apart.
struct Scale {
    frame: Frame,
    bottom: f64,
    top: f64,
    step: f64,
}

impl Scale {
    /// The drawing's y of `value`.
    fn y(&self, value: f64) -> f64 {
        let (top, plot_h) = (self.frame.top, self.frame.plot_h());
        top + plot_h - (value - self.bottom) / (self.top - self.bottom) * plot_h
    }
}

/// A step of 1, 2 or 5 times a power of ten that splits `highest` into about five ticks, and
/// at least `least` (a cent, a whole key).
fn nice_step(highest: f64, least: f64) -> f64 {
    if highest <= 0.0 {
        return least.max(1.0);
    }
    let raw = highest / 5.0;
    let magnitude = 10f64.powf(raw.log10().floor());
    let step = match raw / magnitude {
        n if n <= 1.0 => magnitude,
        n if n <= 2.0 => 2.0 * magnitude,
        n if n <= 5.0 => 5.0 * magnitude,
        _ => 10.0 * magnitude,
    };
    step.max(least)
}

/// `$0.05`, `$1,500`, `-$0.02`: round dollar amounts, with the decimals the step between ticks
/// needs (cents at most), the thousands separated as in the tables.
pub(super) fn dollars(value: f64, step: f64) -> String {
    let decimals = (-step.log10().floor()).clamp(0.0, 2.0) as usize;
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

/// A sparkline of daily amounts: one thin bar per day, scaled to the largest (a refund hangs
/// below the line), a day without data drawn faint.
pub(super) fn sparkline(days: &[(Option<f64>, String)], label: &str) -> Markup {
    let most = days
        .iter()
        .filter_map(|d| d.0)
        .map(f64::abs)
        .fold(0.0, f64::max);
    let unit = if most > 0.0 { 20.0 / most } else { 0.0 };
    let width = (days.len() * 6).max(6);
    html! {
        svg.sparkline viewBox=(format!("0 -22 {width} 32")) role="img" aria-label=(label)
            preserveAspectRatio="none" {
            @for (i, (value, title)) in days.iter().enumerate() {
                @let x = i * 6 + 1;
                @match value {
                    None => rect.no-data-fill x=(x) y="-22" width="4" height="32" { title { (title) } },
                    Some(v) => rect.s0 x=(x) y=(format!("{:.2}", (-v * unit).min(0.0)))
                        width="4" height=(format!("{:.2}", (v * unit).abs().max(1.0))) {
                        title { (title) }
                    },
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use scraper::{Html, Selector};

    use super::*;

    /// The chart as a browser parses it: `(css, attribute)` of every element `css` selects.
    fn attrs(svg: &str, css: &str, attr: &str) -> Vec<String> {
        let doc = Html::parse_fragment(svg);
        doc.select(&Selector::parse(css).unwrap())
            .map(|e| e.value().attr(attr).unwrap_or_default().to_string())
            .collect()
    }

    fn texts(svg: &str, css: &str) -> Vec<String> {
        let doc = Html::parse_fragment(svg);
        doc.select(&Selector::parse(css).unwrap())
            .map(|e| e.text().collect())
            .collect()
    }

    fn chart(bars: Vec<Bar>, least_step: f64) -> String {
        BarChart {
            description: "test",
            y_title: "y",
            x_title: "x",
            bars,
            tick_label: if least_step < 1.0 { &dollars } else { &count },
            least_step,
        }
        .svg(WIDE)
        .into_string()
    }

    fn bar(segments: Vec<f64>) -> Bar {
        let segments = segments
            .into_iter()
            .map(|v| (v, "s0".to_string(), format!("{v}")))
            .collect();
        Bar::new("d".into(), "t".into(), segments)
    }

    #[test]
    fn steps_are_round_and_labels_carry_the_decimals_they_need() {
        assert_eq!(nice_step(0.0, 0.01), 1.0);
        assert_eq!(nice_step(10.0, 0.01), 2.0);
        assert_eq!(nice_step(0.07, 0.01), 0.02);
        assert_eq!(nice_step(0.001, 0.01), 0.01);
        assert_eq!(nice_step(3.0, 1.0), 1.0);
        assert_eq!(nice_step(130.0, 1.0), 50.0);
        assert_eq!(dollars(0.04, 0.02), "$0.04");
        assert_eq!(dollars(15.0, 5.0), "$15");
        assert_eq!(dollars(1500.0, 500.0), "$1,500");
        assert_eq!(dollars(-0.02, 0.01), "-$0.02");
        assert_eq!(dollars(-0.0, 0.01), "$0.00");
    }

    #[test]
    fn negative_segments_stack_below_a_zero_axis_with_negative_ticks() {
        let svg = chart(vec![bar(vec![3.0, -1.0, 2.0]), bar(vec![-2.0])], 0.01);
        // Up to 5 and down to 2: a step of 2, from -$2 to $6.
        assert_eq!(
            texts(&svg, "text.tick[text-anchor=end]"),
            ["-$2", "$0", "$2", "$4", "$6"]
        );
        // The plot's 228 units span $8: zero sits a quarter up from its bottom at 276.
        let zero = attrs(&svg, "line.axis", "y1");
        assert_eq!(zero, ["219.0"]);
        // $1 is 28.5 units: the 3 and the 2 stack up from zero, the -1 and the -2 hang from it.
        let rects: Vec<(String, String)> = attrs(&svg, "rect.s0", "y")
            .into_iter()
            .zip(attrs(&svg, "rect.s0", "height"))
            .collect();
        let pair = |y: &str, h: &str| (y.to_string(), h.to_string());
        assert_eq!(
            rects,
            [
                pair("133.50", "85.50"),
                pair("219.00", "28.50"),
                pair("76.50", "57.00"),
                pair("219.00", "57.00"),
            ]
        );
    }

    #[test]
    fn every_bar_has_its_title_and_only_some_their_label_and_no_data_is_no_bar() {
        let mut bars: Vec<Bar> = (0..12)
            .map(|i| {
                let mut bar = bar(vec![f64::from(i)]);
                bar.label = format!("d{i}");
                bar
            })
            .collect();
        bars[3].no_data = true;
        bars[3].segments.clear();
        bars[4].failed = Some("failed on d4".into());
        let svg = chart(bars, 1.0);
        assert_eq!(texts(&svg, "g.bar > title").len(), 12);
        // Bar 0 has a value of 0 and bar 3 no data: no segment.
        assert_eq!(attrs(&svg, "rect.s0", "y").len(), 10);
        assert_eq!(texts(&svg, "g.bar.no-data > title"), ["t"]);
        assert_eq!(
            attrs(&svg, "g.no-data rect.no-data-fill", "height"),
            ["228.0"]
        );
        assert_eq!(texts(&svg, "g.failed-pull > title"), ["failed on d4"]);
        // Every second bar is labelled, the last one included.
        assert_eq!(
            texts(&svg, "text.tick[text-anchor=middle]"),
            ["d1", "d3", "d5", "d7", "d9", "d11"]
        );
    }
}
