//! Bar charts as inline SVG, drawn on the server: stacked bars per day, a
//! colour per series, a legend and the scale's top value. Written by hand
//! (rectangles and text, about a hundred lines) rather than with a chart
//! crate or a JavaScript library: the pages stay a single request with no
//! script, and every bar carries its numbers (`data-series`, `data-day`,
//! `data-value`, and a `<title>` a browser shows on hover), which the
//! browser tests read back.

use std::fmt::Write;

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 56.0;
const BOTTOM: f64 = 24.0;
const TOP: f64 = 26.0;
const COLOURS: [&str; 8] = [
    "#0b6e4f", "#3f7cac", "#b3261e", "#8a5a00", "#6a4c93", "#1b998b", "#c05299", "#5f6b73",
];

/// One stacked series: its name and a value per day.
pub struct Series {
    pub name: String,
    pub values: Vec<f64>,
}

/// Stacked bars: one bar per entry of `days`, the `series` stacked in it;
/// `unit` names the values (`CPU-hours`). `id` is the SVG's element id.
pub fn stacked_bars(id: &str, days: &[String], series: &[Series], unit: &str) -> String {
    let totals: Vec<f64> = (0..days.len())
        .map(|d| {
            series
                .iter()
                .map(|s| s.values.get(d).copied().unwrap_or(0.0))
                .sum()
        })
        .collect();
    let top = totals.iter().copied().fold(0.0, f64::max);
    let scale = if top > 0.0 {
        (HEIGHT - TOP - BOTTOM) / top
    } else {
        0.0
    };
    let slot = (WIDTH - LEFT) / days.len().max(1) as f64;
    let bar = (slot * 0.7).max(1.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg id="{}" class="chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {}" role="img" aria-label="{}">"#,
        escape(id),
        HEIGHT + 20.0 * series.len().div_ceil(4) as f64,
        escape(unit)
    );
    let base = HEIGHT - BOTTOM;
    let _ = write!(
        svg,
        r##"<line x1="{LEFT}" y1="{base}" x2="{WIDTH}" y2="{base}" stroke="#999"/><line x1="{LEFT}" y1="{TOP}" x2="{WIDTH}" y2="{TOP}" stroke="#ddd"/><text x="{LEFT}" y="{}" font-size="11">{}</text><text x="{}" y="{base}" font-size="11" text-anchor="end">0</text>"##,
        TOP - 6.0,
        escape(&format!("{top:.2} {unit}")),
        LEFT - 4.0,
    );
    for (d, day) in days.iter().enumerate() {
        let x = LEFT + slot * d as f64 + (slot - bar) / 2.0;
        let mut y = base;
        for (i, s) in series.iter().enumerate() {
            let v = s.values.get(d).copied().unwrap_or(0.0);
            if v <= 0.0 {
                continue;
            }
            let h = v * scale;
            y -= h;
            let _ = write!(
                svg,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{bar:.1}" height="{h:.1}" fill="{}" data-series="{}" data-day="{}" data-value="{v:.3}"><title>{}</title></rect>"#,
                COLOURS[i % COLOURS.len()],
                escape(&s.name),
                escape(day),
                escape(&format!("{}, {day}: {v:.3} {unit}", s.name)),
            );
        }
        // A label every few days keeps them from overlapping.
        if d % (days.len() / 10).max(1) == 0 {
            let _ = write!(
                svg,
                r#"<text x="{:.1}" y="{}" font-size="10" text-anchor="middle">{}</text>"#,
                x + bar / 2.0,
                base + 14.0,
                escape(day.get(5..).unwrap_or(day))
            );
        }
    }
    for (i, s) in series.iter().enumerate() {
        let (x, y) = (
            LEFT + 160.0 * (i % 4) as f64,
            HEIGHT + 6.0 + 20.0 * (i / 4) as f64,
        );
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="{y}" width="10" height="10" fill="{}"/><text x="{}" y="{}" font-size="11">{}</text>"#,
            COLOURS[i % COLOURS.len()],
            x + 14.0,
            y + 9.0,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    svg
}

/// Text for SVG/HTML: the five characters that could end an attribute or
/// open an element.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_carry_their_numbers_and_names_are_escaped() {
        let days = vec!["2026-12-01".to_string(), "2026-12-02".to_string()];
        let series = vec![
            Series {
                name: "students".into(),
                values: vec![2.0, 0.0],
            },
            Series {
                name: "<script>".into(),
                values: vec![1.0, 4.0],
            },
        ];
        let svg = stacked_bars("cpu", &days, &series, "CPU-hours");
        assert_eq!(
            svg.matches("<rect x=").count(),
            3 + 2,
            "three bars, two legend keys"
        );
        assert!(svg.contains(r#"data-series="students" data-day="2026-12-01" data-value="2.000""#));
        assert!(!svg.contains("<script>") && svg.contains("&lt;script&gt;"));
        assert!(
            svg.contains("4.00 CPU-hours"),
            "the scale's top is the tallest day"
        );
    }

    #[test]
    fn an_empty_chart_is_still_a_chart() {
        let svg = stacked_bars("x", &[], &[], "GiB");
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>"));
    }
}
