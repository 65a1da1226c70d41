//! The frame every console page shares, and small pieces several pages use.

use keyward_core::User;
use maud::{html, Markup, DOCTYPE};
use time::OffsetDateTime;

/// What the navigation bar shows: who is signed in and where they are.
pub struct Nav<'a> {
    pub user: &'a User,
    pub admin: bool,
    pub csrf: &'a str,
    pub section: &'static str,
}

/// A whole page. The title never holds anything secret (browsers keep titles in
/// their history).
pub fn page(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="color-scheme" content="light dark";
                meta name="referrer" content="no-referrer";
                title { (title) " · Keyward" }
                link rel="stylesheet" href=(super::assets::STYLESHEET);
                script src=(super::assets::SCRIPT) defer {}
            }
            body {
                a.skip href="#main" { "Skip to content" }
                @if let Some(nav) = nav { (bar(nav)) }
                main #main tabindex="-1" { (body) }
            }
        }
    }
}

fn bar(nav: &Nav) -> Markup {
    let link = |href: &'static str, label: &'static str, section: &'static str| {
        html! {
            @if nav.section == section {
                a href=(href) aria-current="page" { (label) }
            } @else {
                a href=(href) { (label) }
            }
        }
    };
    html! {
        header.bar {
            a.brand href="/console/keys" { "Keyward" }
            nav aria-label="Main" {
                (link("/console/keys", "Keys", "keys"))
                @if nav.admin { (link("/console/users", "Users", "users")) }
                (link("/console/audit", "Audit log", "audit"))
                (link("/console/profile", "Profile", "profile"))
            }
            form.logout method="post" action="/console/logout" {
                (csrf_field(nav.csrf))
                span.who { (nav.user.email) }
                button.link type="submit" { "Log out" }
            }
        }
    }
}

pub fn csrf_field(token: &str) -> Markup {
    html! { input type="hidden" name=(super::session::CSRF_FIELD) value=(token); }
}

/// A notice above a page's content: an error (`role=alert`, read out at once) or news.
pub fn notice(error: Option<&str>, news: Option<&str>) -> Markup {
    html! {
        @if let Some(error) = error { p.notice.error role="alert" { (error) } }
        @if let Some(news) = news { p.notice.news role="status" { (news) } }
    }
}

/// A time as people read it, in UTC, with the machine-readable form for tools.
pub fn when(t: Option<OffsetDateTime>) -> Markup {
    match t {
        None => html! { span.muted { "never" } },
        Some(t) => html! { time datetime=(crate::native::rfc3339(t)) { (short_time(t)) } },
    }
}

pub fn short_time(t: OffsetDateTime) -> String {
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute()
    )
}

/// `datetime-local` inputs send `2026-12-31T23:59` (no seconds, no zone); the console
/// says they are UTC and makes them RFC 3339. Anything else is passed on as typed, for
/// the parser to refuse naming the field.
pub fn utc_from_local_input(text: &str) -> String {
    let bytes = text.as_bytes();
    if bytes.len() == 16 && bytes[10] == b'T' && bytes[13] == b':' {
        format!("{text}:00Z")
    } else {
        text.to_string()
    }
}

/// An RFC 3339 time as a `datetime-local` input shows it.
pub fn local_input_value(t: Option<OffsetDateTime>) -> String {
    t.map(|t| {
        short_time(t)
            .replace(' ', "T")
            .trim_end_matches("TUTC")
            .to_string()
    })
    .unwrap_or_default()
}

pub fn state_badge(state: &str) -> Markup {
    html! { span class={ "badge " (state) } { (state) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_times_become_utc_and_back() {
        assert_eq!(
            utc_from_local_input("2026-12-31T23:59"),
            "2026-12-31T23:59:00Z"
        );
        assert_eq!(utc_from_local_input("tomorrow"), "tomorrow");
        let t = OffsetDateTime::from_unix_timestamp(1_798_761_540).unwrap();
        assert_eq!(local_input_value(Some(t)), "2026-12-31T23:59");
        assert_eq!(local_input_value(None), "");
    }
}
