// Package retention decides which versions of each host a retention policy
// keeps. Apply is a pure function of the versions, the policy, the time zone,
// the planning time and the list of hosts in the cluster; it reads no clock,
// file or network and deletes nothing. The caller acts on the Plan.
//
// # Semantics
//
// The rules are those of restic's forget command (0.16 and later):
//
//   - Each host's versions are planned on their own, newest first.
//   - Calendar buckets (hour, day, ISO week, month, year) are computed in one
//     IANA zone, the schedule's. Weeks run Monday to Sunday and belong to
//     their ISO week-year: 2023-01-01 is in 2022-W52.
//   - A counted rule (keep_last, keep_hourly … keep_yearly) keeps the newest
//     version of each bucket until it has kept its count. Counts are of
//     buckets that hold versions, so empty days use up nothing.
//   - A version kept by one rule still uses up a slot of every other counted
//     rule whose bucket it opens; rules combine by union.
//   - A counted rule with slots left when it reaches the host's oldest
//     version keeps that version even if its bucket is already taken
//     ("oldest" fill), so a young series keeps its first version.
//   - keep_within keeps every version newer than the given duration before
//     the host's newest version; keep_within_<period> keeps the newest version
//     of each bucket in that window. The window is anchored to the newest
//     version that is not future-dated, never to the clock, so an outage does
//     not erode history. The window's start is calendar arithmetic in the
//     zone: "7d" before 04-02 01:30 CEST is 03-26 01:30 CET, across the DST
//     change, as restic computes it when run in that zone.
//
// Guards apply on top of the rules: an empty policy is refused
// (ErrEmptyPolicy); a host's newest version that is not future-dated is
// always kept; held versions (being restored or exported) are kept;
// future-dated versions are kept and flagged; all versions of a host that
// left the cluster are kept and the host is flagged Departed. Future-dated
// versions still take part in the counted rules, as in restic, so they can
// take a slot; they never anchor the within-rules.
//
// # Reasons
//
// Every kept version lists why, in this order, with these stable strings
// (the CLI prints them and JSON emits them):
//
//	within 7d            keep_within (the duration as written by Duration.String)
//	last 1/3             keep_last: the version took slot 1 of 3
//	hourly 2/24          keep_hourly, likewise
//	daily 3/7            keep_daily
//	weekly 1/4           keep_weekly
//	monthly 5/12         keep_monthly
//	yearly 1/unlimited   keep_yearly = -1: slot 1, no limit
//	oldest daily 4/7     the oldest version, kept to fill a slot (bucket already taken)
//	hourly within 1d     keep_within_hourly
//	daily within 7d      keep_within_daily
//	weekly within 1m     keep_within_weekly
//	monthly within 1y    keep_within_monthly
//	yearly within 10y    keep_within_yearly
//	future-dated         dated after the planning time (ReasonFuture)
//	newest               the host's newest version that no rule kept (ReasonNewest)
//	held                 being restored or exported (ReasonHeld)
//	departed             the host left the cluster (ReasonDeparted)
//
// A removed version has no reasons.
//
// # Differences from restic
//
// Besides the guards, which restic lacks (restic keeps no held, departed or
// future-dated version as such, and may drop a group's newest version when a
// future-dated one takes its slot), restic before 0.16 (Debian 12 ships
// 0.14.0) has no oldest fill, and treats a count of -1 as "keep nothing"
// rather than "unlimited". The tests compare Apply with the installed restic
// and account for both.
package retention
