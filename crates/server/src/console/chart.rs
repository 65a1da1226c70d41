//! A key's verifications over time as a stacked bar chart, drawn on the server as SVG
//! (no script, no inline style: the page's policy allows neither), with the same
//! figures in a table beside it for screen readers and for copying.

use keyward_app::analytics::SeriesAnswer;
use keyward_core::analytics::{Granularity, OutcomeCounts};
use keyward_core::VerifyCode;
use maud::{html, Markup};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
/// Room for the axis labels.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 22.0;

/// How outcomes are grouped in the chart: a colour each (in the stylesheet).
const SHOWN: [(&str, &str, &[VerifyCode]); 4] = [
    ("valid", "Valid", &[VerifyCode::Valid]),
    (
        "limited",
        "Rate limited or out of credits",
        &[VerifyCode::RateLimited, VerifyCode::UsageExceeded],
    ),
    (
        "refused",
        "Refused (permissions, address)",
        &[VerifyCode::InsufficientPermissions, VerifyCode::Forbidden],
    ),
    (
        "invalid",
        "Expired, revoked, disabled",
        &[
            VerifyCode::Expired,
            VerifyCode::Revoked,
            VerifyCode::Disabled,
        ],
    ),
];

fn part(counts: &OutcomeCounts, codes: &[VerifyCode]) -> u64 {
    codes.iter().map(|code| counts.get(*code)).sum()
}

pub fn usage(answer: &SeriesAnswer) -> Markup {
    let buckets: Vec<(i64, OutcomeCounts)> = answer
        .series
        .first()
        .map(|s| s.buckets.clone())
        .unwrap_or_default();
    let mut totals = OutcomeCounts::default();
    for (_, counts) in &buckets {
        for code in VerifyCode::ALL {
            totals.add(code, counts.get(code));
        }
    }
    let peak = buckets
        .iter()
        .map(|(_, c)| c.total())
        .max()
        .unwrap_or(0)
        .max(1);
    let granularity = answer.range.granularity;
    let summary = format!(
        "{} verifications, {} valid, over {} {}s",
        totals.total(),
        totals.get(VerifyCode::Valid),
        buckets.len(),
        granularity.as_str()
    );
    let slot = (WIDTH - LEFT) / buckets.len().max(1) as f64;
    let plot = HEIGHT - BOTTOM;
    html! {
        figure.chart {
            svg viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-label=(summary)
                data-total=(totals.total()) data-valid=(totals.get(VerifyCode::Valid)) {
                line.axis x1=(LEFT) y1=(plot) x2=(WIDTH) y2=(plot) {}
                text.tick x=(LEFT - 6.0) y=(12) text-anchor="end" { (peak) }
                text.tick x=(LEFT - 6.0) y=(plot) text-anchor="end" { "0" }
                @for (i, (start, counts)) in buckets.iter().enumerate() {
                    @let x = LEFT + i as f64 * slot + slot * 0.1;
                    @let mut base = plot;
                    @for (class, label, codes) in SHOWN {
                        @let n = part(counts, codes);
                        @if n > 0 {
                            @let h = (n as f64 / peak as f64) * (plot - 8.0);
                            @let y = { base -= h; base };
                            rect class=(class) x=(format!("{x:.1}")) y=(format!("{y:.1}"))
                                width=(format!("{:.1}", slot * 0.8)) height=(format!("{h:.1}")) {
                                title { (n) " " (label) " at " (bucket_label(*start, granularity)) }
                            }
                        }
                    }
                }
                @if let (Some((first, _)), Some((last, _))) = (buckets.first(), buckets.last()) {
                    text.tick x=(LEFT) y=(HEIGHT - 4.0) { (bucket_label(*first, granularity)) }
                    text.tick x=(WIDTH) y=(HEIGHT - 4.0) text-anchor="end" { (bucket_label(*last, granularity)) }
                }
            }
            figcaption {
                ul.legend {
                    @for (class, label, codes) in SHOWN {
                        li { span class={ "swatch " (class) } {} (label) ": " strong { (part(&totals, codes)) } }
                    }
                }
            }
        }
        details {
            summary { "The figures by outcome" }
            table.compact {
                thead { tr { th scope="col" { "Outcome" } th scope="col" { "Verifications" } } }
                tbody {
                    @for code in VerifyCode::ALL {
                        @if code != VerifyCode::NotFound && code != VerifyCode::Malformed {
                            tr { td { (code.field_name()) } td.number data-code=(code.field_name()) { (totals.get(code)) } }
                        }
                    }
                }
            }
        }
    }
}

fn bucket_label(start: i64, granularity: Granularity) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp(start) else {
        return start.to_string();
    };
    match granularity {
        Granularity::Day => format!("{:04}-{:02}-{:02}", t.year(), u8::from(t.month()), t.day()),
        _ => format!("{:02}:{:02}", t.hour(), t.minute()),
    }
}
