//! Unit tests of the rota: shifts, handovers across the daylight saving changes, overrides and gaps.

use super::*;

fn tz() -> TimeZone {
    time_zone("Europe/Amsterdam").unwrap()
}

fn at(local: &str) -> Millis {
    parse_time(local, &tz()).unwrap()
}

fn rota(rotation: Rotation, start: &str, members: &[&'static str]) -> Rota<&'static str> {
    Rota {
        rotation,
        handover: parse_handover("09:00").unwrap(),
        start: start.parse().unwrap(),
        members: members.iter().map(|m| Some(*m)).collect(),
    }
}

fn duty(primary: Option<&'static str>, secondary: Option<&'static str>) -> OnDuty<&'static str> {
    OnDuty { primary, secondary }
}

#[test]
fn daily_rotation_hands_over_at_nine() {
    let r = rota(Rotation::Daily, "2026-12-01", &["h1", "h2", "h3"]);
    let cases = [
        ("2026-12-01 08:59", duty(None, Some("h1"))),
        ("2026-12-01 09:00", duty(Some("h1"), Some("h2"))),
        ("2026-12-02 08:59", duty(Some("h1"), Some("h2"))),
        ("2026-12-02 09:00", duty(Some("h2"), Some("h3"))),
        ("2026-12-03 23:00", duty(Some("h3"), Some("h1"))),
        ("2026-12-04 09:00", duty(Some("h1"), Some("h2"))),
        ("2027-01-01 12:00", duty(Some("h2"), Some("h3"))),
    ];
    for (time, expected) in cases {
        assert_eq!(
            on_call_at(Some(&r), &[], &tz(), at(time)),
            expected,
            "{time}"
        );
    }
}

#[test]
fn weekly_rotation_crosses_its_boundary() {
    let r = rota(Rotation::Weekly, "2026-11-30", &["h1", "h2"]);
    assert_eq!(
        on_call_at(Some(&r), &[], &tz(), at("2026-12-07 08:59")),
        duty(Some("h1"), Some("h2"))
    );
    assert_eq!(
        on_call_at(Some(&r), &[], &tz(), at("2026-12-07 09:00")),
        duty(Some("h2"), Some("h1"))
    );
    assert_eq!(
        on_call_at(Some(&r), &[], &tz(), at("2026-12-14 09:00")),
        duty(Some("h1"), Some("h2"))
    );
}

#[test]
fn one_member_has_no_secondary() {
    let r = rota(Rotation::Daily, "2026-12-01", &["h1"]);
    assert_eq!(
        on_call_at(Some(&r), &[], &tz(), at("2026-12-05 10:00")),
        duty(Some("h1"), None)
    );
}

#[test]
fn handover_stays_at_nine_across_both_dst_changes() {
    let tz = tz();
    // The last Sunday of March 2027 is the 28th (02:00 CET → 03:00 CEST); of October 2027 the
    // 31st (03:00 CEST → 02:00 CET).
    for (start, day, offset_before, offset_after) in [
        ("2027-03-27", "2027-03-28", "+01:00", "+02:00"),
        ("2027-10-30", "2027-10-31", "+02:00", "+01:00"),
    ] {
        let r = rota(Rotation::Daily, start, &["h1", "h2"]);
        // Handovers: the day before, the DST day, the day after, all at 09:00 local.
        for (index, date) in [(0, start), (1, day)] {
            let s = shift_start(&r, &tz, index);
            let offset = if index == 0 {
                offset_before
            } else {
                offset_after
            };
            assert_eq!(local_rfc3339(s, &tz), format!("{date}T09:00:00{offset}"));
        }
        // The DST night: h1 holds the whole night, which is 23 or 25 hours long.
        let night_start = shift_start(&r, &tz, 0);
        let night_end = shift_start(&r, &tz, 1);
        let hours = (night_end - night_start) / 3_600_000;
        assert_eq!(hours, if offset_before == "+01:00" { 23 } else { 25 });
        assert_eq!(
            on_call_at(Some(&r), &[], &tz, at(&format!("{day} 02:30"))).primary,
            Some("h1")
        );
        assert_eq!(
            on_call_at(Some(&r), &[], &tz, at(&format!("{day} 08:59"))).primary,
            Some("h1")
        );
        assert_eq!(
            on_call_at(Some(&r), &[], &tz, at(&format!("{day} 09:00"))).primary,
            Some("h2")
        );
        assert_eq!(
            on_call_at(Some(&r), &[], &tz, night_end - 1).primary,
            Some("h1")
        );
    }
}

#[test]
fn last_sundays_of_march_and_october_2026() {
    // 29 March and 25 October 2026.
    let tz = tz();
    let r = rota(Rotation::Weekly, "2026-03-23", &["h1", "h2"]);
    // Monday 30 March 09:00 CEST starts h2's week; the Sunday in between is still h1's.
    assert_eq!(
        on_call_at(Some(&r), &[], &tz, at("2026-03-29 03:30")).primary,
        Some("h1")
    );
    assert_eq!(
        local_rfc3339(shift_start(&r, &tz, 1), &tz),
        "2026-03-30T09:00:00+02:00"
    );
    let r = rota(Rotation::Daily, "2026-10-24", &["h1", "h2"]);
    assert_eq!(
        local_rfc3339(shift_start(&r, &tz, 1), &tz),
        "2026-10-25T09:00:00+01:00"
    );
    // 02:30 happens twice that night; both are h1's.
    let first = at("2026-10-25T02:30:00+02:00");
    let second = at("2026-10-25T02:30:00+01:00");
    assert_eq!(second - first, 3_600_000);
    for t in [first, second] {
        assert_eq!(on_call_at(Some(&r), &[], &tz, t).primary, Some("h1"));
    }
}

#[test]
fn a_handover_inside_the_missing_hour_happens_after_the_jump() {
    let tz = tz();
    let mut r = rota(Rotation::Daily, "2026-03-28", &["h1", "h2"]);
    r.handover = parse_handover("02:30").unwrap();
    let s = shift_start(&r, &tz, 1);
    assert_eq!(local_rfc3339(s, &tz), "2026-03-29T03:30:00+02:00");
    assert_eq!(on_call_at(Some(&r), &[], &tz, s - 1).primary, Some("h1"));
    assert_eq!(on_call_at(Some(&r), &[], &tz, s).primary, Some("h2"));
    assert_eq!(shift_index(&r, &tz, at("2026-03-29 03:10")), 0);
}

#[test]
fn overrides_take_the_place_for_their_time() {
    let tz = tz();
    let r = rota(Rotation::Daily, "2026-12-01", &["h1", "h2", "h3"]);
    let overrides = [
        Override {
            id: "o1".into(),
            worker: "h4",
            role: Role::Primary,
            starts_at: at("2026-12-01 18:00"),
            ends_at: at("2026-12-01 22:00"),
        },
        // h2 takes the primary place while being the rota's secondary: h1 becomes secondary.
        Override {
            id: "o2".into(),
            worker: "h2",
            role: Role::Primary,
            starts_at: at("2026-12-01 20:00"),
            ends_at: at("2026-12-01 21:00"),
        },
    ];
    let cases = [
        ("2026-12-01 17:59", duty(Some("h1"), Some("h2"))),
        ("2026-12-01 18:00", duty(Some("h4"), Some("h2"))),
        ("2026-12-01 20:30", duty(Some("h2"), Some("h1"))),
        ("2026-12-01 21:30", duty(Some("h4"), Some("h2"))),
        ("2026-12-01 22:00", duty(Some("h1"), Some("h2"))),
    ];
    for (time, expected) in cases {
        assert_eq!(
            on_call_at(Some(&r), &overrides, &tz, at(time)),
            expected,
            "{time}"
        );
    }
    // An override fills a place even without a rota.
    assert_eq!(
        on_call_at(None, &overrides[..1], &tz, at("2026-12-01 19:00")),
        duty(Some("h4"), None)
    );
    let secondary = [Override {
        id: "o3".into(),
        worker: "h3",
        role: Role::Secondary,
        starts_at: at("2026-12-01 10:00"),
        ends_at: at("2026-12-01 11:00"),
    }];
    assert_eq!(
        on_call_at(Some(&r), &secondary, &tz, at("2026-12-01 10:30")),
        duty(Some("h1"), Some("h3"))
    );
}

#[test]
fn schedule_flags_a_hole() {
    let tz = tz();
    // The second place is vacant (its member left the team).
    let r = Rota {
        rotation: Rotation::Daily,
        handover: parse_handover("09:00").unwrap(),
        start: "2026-12-01".parse().unwrap(),
        members: vec![Some("h1"), None, Some("h3")],
    };
    let plan = schedule(
        Some(&r),
        &[],
        &tz,
        at("2026-11-30 12:00"),
        at("2026-12-04 12:00"),
    );
    let shown: Vec<(String, Option<&str>, bool)> = plan
        .iter()
        .map(|s| {
            (
                local_rfc3339(s.starts_at, &tz),
                s.duty.primary,
                s.duty.is_gap(),
            )
        })
        .collect();
    assert_eq!(
        shown,
        vec![
            // Before the rota starts: nobody.
            ("2026-11-30T12:00:00+01:00".to_string(), None, true),
            ("2026-12-01T09:00:00+01:00".to_string(), Some("h1"), false),
            ("2026-12-02T09:00:00+01:00".to_string(), None, true),
            ("2026-12-03T09:00:00+01:00".to_string(), Some("h3"), false),
            ("2026-12-04T09:00:00+01:00".to_string(), Some("h1"), false),
        ]
    );
    assert_eq!(plan.last().unwrap().ends_at, at("2026-12-04 12:00"));
    // An override fills the hole.
    let filled = [Override {
        id: "o".into(),
        worker: "h3",
        role: Role::Primary,
        starts_at: at("2026-12-02 09:00"),
        ends_at: at("2026-12-03 09:00"),
    }];
    let plan = schedule(
        Some(&r),
        &filled,
        &tz,
        at("2026-12-01 12:00"),
        at("2026-12-04 12:00"),
    );
    assert!(plan.iter().all(|s| !s.duty.is_gap()), "{plan:?}");
}

#[test]
fn schedule_merges_unchanged_stretches() {
    let tz = tz();
    let r = rota(Rotation::Daily, "2026-12-01", &["h1"]);
    let plan = schedule(
        Some(&r),
        &[],
        &tz,
        at("2026-12-02 00:00"),
        at("2026-12-09 00:00"),
    );
    assert_eq!(plan.len(), 1);
    assert_eq!(plan[0].duty, duty(Some("h1"), None));
}

#[test]
fn times_parse_local_and_with_offsets() {
    let tz = tz();
    assert_eq!(
        parse_time("2026-12-24 18:00", &tz).unwrap(),
        parse_time("2026-12-24T17:00:00Z", &tz).unwrap()
    );
    assert_eq!(
        parse_time("2026-07-01T18:00", &tz).unwrap(),
        parse_time("2026-07-01T18:00:00+02:00", &tz).unwrap()
    );
    assert!(parse_time("morgen", &tz).is_err());
    assert!(parse_handover("9:00").is_ok());
    for bad in ["24:00", "09:60", "0900", "x"] {
        assert!(parse_handover(bad).is_err(), "{bad}");
    }
}
