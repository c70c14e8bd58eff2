//! The lifecycle of orders and top-ups in production (issue #21):
//!
//! - **Automatic release after an inspection window.** An order may carry
//!   `autoReleaseAfter` (a duration counted from the seller's completion) or an absolute
//!   `autoReleaseAt`; the marketplace default is `OFFERHUB_AUTO_RELEASE_AFTER`. The clock
//!   starts ([`start_clock`], `PENDING → SCHEDULED`, event `order.auto_release_scheduled`)
//!   when the seller's work is complete: for a multi-release order when the seller has
//!   marked its last milestone completed (`POST /orders/{id}/milestones/{ref}/complete`);
//!   a single-release order has no completion step of its own in the API (the seller's
//!   `change_milestone_status` is the first step of the release saga), so its clock starts
//!   when its escrow is funded (`IN_PROGRESS`): the window is the delivery-and-inspection
//!   period. A dispute stops the clock ([`stop_clock`], `STOPPED`). When the time comes,
//!   the worker releases through the very saga of `POST /orders/{id}/resolution/release`
//!   ([`crate::services::escrow::auto_release`], actor `system`), claiming the schedule
//!   `SCHEDULED → RELEASING` in the transaction that claims the order for the saga: of
//!   several daemons exactly one releases. The saga's end emits `order.auto_released`.
//! - **Expiry of stale reservations** ([`expire_reservations`]): orders in
//!   `FUNDS_RESERVED` untouched for `OFFERHUB_ORDER_RESERVATION_TTL` are canceled through
//!   [`crate::services::orders::expire`] (the cancel path: hold voided, `order.expired`).
//!   Only `FUNDS_RESERVED`: in `ESCROW_FUNDING` a signed funding transaction may still
//!   land on chain, so such orders are left to the buyer or the marketplace.
//! - **Top-ups past Airtm's payin expiry** (15 days, docs/PROVIDERS.md, Airtm: payins) are
//!   re-read from Airtm and, when still awaiting the buyer, closed `TOPUP_CANCELED` with
//!   `topup.expired` ([`crate::services::topups::expire_stale`]).
//!
//! Durations ([`parse_duration`]) are ISO-8601 (`P7D`, `PT2S`, `PT36H`, `P1DT12H`, `P2W`)
//! or a whole number of seconds; years and months are refused (their length varies).

use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sqlx::Row;

use crate::context::Context;
use crate::domain::order::{AutoReleaseStatus, OrderStatus};
use crate::error::{Error, Result};
use crate::events::NewEvent;
use crate::store::{Store, Tx};

/// The longest accepted duration: 3650 days.
pub const MAX_DURATION_SECS: u64 = 3650 * 86_400;

/// What a duration must look like (in error messages).
pub const DURATION_EXPECTED: &str = "an ISO-8601 duration such as P7D or PT2S, or a whole number of seconds, between 1 second and 3650 days";

/// Parses a duration: ISO-8601 `PnW` or `P[nD][T[nH][nM][nS]]` (whole numbers), or a
/// whole number of seconds. `None` when malformed, zero or above [`MAX_DURATION_SECS`].
pub fn parse_duration(raw: &str) -> Option<u64> {
    let raw = raw.trim();
    if !raw.is_empty() && raw.bytes().all(|b| b.is_ascii_digit()) {
        return raw
            .parse::<u64>()
            .ok()
            .filter(|s| (1..=MAX_DURATION_SECS).contains(s));
    }
    let rest = raw.strip_prefix('P')?;
    if rest.is_empty() {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) if !t.is_empty() => (d, Some(t)),
        Some(_) => return None,
        None => (rest, None),
    };
    let mut total: u64 = 0;
    let mut take = |part: &str, units: &[(char, u64)]| -> Option<()> {
        let mut number = String::new();
        let mut next_unit = 0;
        for c in part.chars() {
            if c.is_ascii_digit() {
                number.push(c);
                continue;
            }
            let at = units.iter().position(|(u, _)| *u == c)?;
            if at < next_unit || number.is_empty() {
                return None;
            }
            next_unit = at + 1;
            let n: u64 = number.parse().ok()?;
            total = total.checked_add(n.checked_mul(units[at].1)?)?;
            number.clear();
        }
        number.is_empty().then_some(())
    };
    take(date, &[('W', 604_800), ('D', 86_400)])?;
    if date.contains('W') && (date.contains('D') || time.is_some()) {
        return None;
    }
    if let Some(t) = time {
        take(t, &[('H', 3600), ('M', 60), ('S', 1)])?;
    }
    Some(total).filter(|s| (1..=MAX_DURATION_SECS).contains(s))
}

/// Formats seconds as the ISO-8601 duration the API returns (`P7D`, `PT2S`, `P1DT2H`).
pub fn format_duration(secs: u64) -> String {
    let (d, rest) = (secs / 86_400, secs % 86_400);
    let (h, m, s) = (rest / 3600, rest % 3600 / 60, rest % 60);
    let mut out = String::from("P");
    if d > 0 {
        out.push_str(&format!("{d}D"));
    }
    if rest > 0 || d == 0 {
        out.push('T');
        if h > 0 {
            out.push_str(&format!("{h}H"));
        }
        if m > 0 {
            out.push_str(&format!("{m}M"));
        }
        if s > 0 || rest == 0 {
            out.push_str(&format!("{s}S"));
        }
    }
    out
}

/// A duration from a JSON field: a string ([`parse_duration`]) or a whole number of
/// seconds. 400 `VALIDATION_ERROR` naming `field` otherwise.
pub fn duration_field(field: &str, v: &Value) -> Result<u64> {
    let parsed = match v {
        Value::String(s) => parse_duration(s),
        Value::Number(n) => n.as_u64().filter(|s| (1..=MAX_DURATION_SECS).contains(s)),
        _ => None,
    };
    parsed.ok_or_else(|| Error::validation(field, format!("must be {DURATION_EXPECTED}")))
}

/// `now + secs` in the storage format.
fn after_now(secs: u64) -> String {
    let now: DateTime<Utc> = Utc::now();
    let later = now
        .checked_add_signed(chrono::Duration::seconds(
            i64::try_from(secs).unwrap_or(i64::MAX / 2),
        ))
        .unwrap_or(now);
    crate::clock::format_ts(later)
}

/// `now − secs` in the storage format.
pub fn before_now(secs: u64) -> String {
    let now: DateTime<Utc> = Utc::now();
    let earlier = now
        .checked_sub_signed(chrono::Duration::seconds(
            i64::try_from(secs).unwrap_or(i64::MAX / 2),
        ))
        .unwrap_or(now);
    crate::clock::format_ts(earlier)
}

/// Starts the inspection clock of `order_id` when it has one waiting (`PENDING →
/// SCHEDULED`), in the caller's transaction: `auto_release_at` is the absolute time given
/// at creation, else now + `autoReleaseAfter`. Audited (actor `system`); emits
/// `order.auto_release_scheduled`. `false` when the order has no pending clock.
pub async fn start_clock(db: &mut Tx, order_id: &str) -> Result<bool> {
    let row = sqlx::query(
        "SELECT auto_release_after_secs, auto_release_at FROM orders \
         WHERE id = $1 AND auto_release_status = $2",
    )
    .bind(order_id)
    .bind(AutoReleaseStatus::Pending)
    .fetch_optional(db.conn())
    .await?;
    let Some(row) = row else {
        return Ok(false);
    };
    let after: Option<i64> = row.try_get("auto_release_after_secs")?;
    let explicit: Option<String> = row.try_get("auto_release_at")?;
    let at = match (&explicit, after) {
        (Some(at), _) => at.clone(),
        (None, Some(secs)) => after_now(u64::try_from(secs).unwrap_or(0)),
        (None, None) => return Ok(false),
    };
    let now = crate::clock::now();
    let done = sqlx::query(
        "UPDATE orders SET auto_release_status = $1, auto_release_at = $2 \
         WHERE id = $3 AND auto_release_status = $4",
    )
    .bind(AutoReleaseStatus::Scheduled)
    .bind(&at)
    .bind(order_id)
    .bind(AutoReleaseStatus::Pending)
    .execute(db.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    let data = json!({
        "orderId": order_id,
        "autoReleaseAt": at,
        "autoReleaseAfter": after.map(|s| format_duration(u64::try_from(s).unwrap_or(0))),
        "startedAt": now,
    });
    db.audit(
        Context::system()
            .audit("order.auto_release_scheduled", "order", order_id)
            .before(json!({ "autoReleaseStatus": AutoReleaseStatus::Pending }))
            .after(&data),
    );
    db.emit(NewEvent::new(
        "order.auto_release_scheduled",
        "order",
        order_id,
        data,
    ));
    Ok(true)
}

/// Stops the clock of `order_id` (a dispute was opened): `PENDING | SCHEDULED →
/// STOPPED`, audited with `actor`'s context, in the caller's transaction. `false` when
/// there was no running clock.
pub async fn stop_clock(db: &mut Tx, ctx: &Context, order_id: &str, reason: &str) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE orders SET auto_release_status = $1 \
         WHERE id = $2 AND auto_release_status IN ($3, $4)",
    )
    .bind(AutoReleaseStatus::Stopped)
    .bind(order_id)
    .bind(AutoReleaseStatus::ARMED[0])
    .bind(AutoReleaseStatus::ARMED[1])
    .execute(db.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    db.audit(
        ctx.audit("order.auto_release_stopped", "order", order_id)
            .after(json!({ "autoReleaseStatus": AutoReleaseStatus::Stopped, "reason": reason })),
    );
    Ok(true)
}

/// Ends a clock that can no longer fire because the order ended another way (released,
/// refunded, resolved or canceled): `PENDING | SCHEDULED → CANCELED`, in the caller's
/// transaction.
pub async fn cancel_clock(db: &mut Tx, order_id: &str) -> Result<()> {
    sqlx::query(
        "UPDATE orders SET auto_release_status = $1 \
         WHERE id = $2 AND auto_release_status IN ($3, $4)",
    )
    .bind(AutoReleaseStatus::Canceled)
    .bind(order_id)
    .bind(AutoReleaseStatus::ARMED[0])
    .bind(AutoReleaseStatus::ARMED[1])
    .execute(db.conn())
    .await?;
    Ok(())
}

/// Moves a clock from `from` to `to` in its own transaction (the worker: a disputed
/// order's clock stops, an ended order's clock is canceled). `true` when it moved.
pub async fn settle_clock(
    store: &Store,
    order_id: &str,
    from: AutoReleaseStatus,
    to: AutoReleaseStatus,
) -> Result<bool> {
    debug_assert!(from.next().contains(&to), "{from} → {to}");
    let mut db = store.begin().await?;
    let done = sqlx::query(
        "UPDATE orders SET auto_release_status = $1 WHERE id = $2 AND auto_release_status = $3",
    )
    .bind(to)
    .bind(order_id)
    .bind(from)
    .execute(db.conn())
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    db.audit(
        Context::system()
            .audit("order.auto_release_settled", "order", order_id)
            .before(json!({ "autoReleaseStatus": from }))
            .after(json!({ "autoReleaseStatus": to })),
    );
    db.commit().await?;
    Ok(true)
}

/// Orders whose inspection window has expired (`SCHEDULED`, `auto_release_at` passed),
/// oldest first — the index `orders_auto_release_due`.
pub async fn due_auto_releases(store: &Store, limit: i64) -> Result<Vec<String>> {
    Ok(sqlx::query_scalar(
        "SELECT id FROM orders WHERE auto_release_status = $1 AND auto_release_at <= $2 \
         ORDER BY auto_release_at LIMIT $3",
    )
    .bind(AutoReleaseStatus::Scheduled)
    .bind(crate::clock::now())
    .bind(limit)
    .fetch_all(store.reader())
    .await?)
}

/// Cancels orders in `FUNDS_RESERVED` untouched for `ttl_secs` (voiding their holds,
/// `order.expired`); returns how many expired. Safe with several daemons: each
/// cancellation is a compare-and-set, the loser skips.
pub async fn expire_reservations(store: &Store, ttl_secs: u64, limit: i64) -> Result<usize> {
    let cutoff = before_now(ttl_secs);
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = $1 AND updated_at < $2 \
         AND active_saga IS NULL ORDER BY updated_at LIMIT $3",
    )
    .bind(OrderStatus::FundsReserved)
    .bind(&cutoff)
    .bind(limit)
    .fetch_all(store.reader())
    .await?;
    let mut n = 0;
    for id in ids {
        match crate::services::orders::expire(store, &id, &cutoff, ttl_secs).await {
            Ok(true) => n += 1,
            Ok(false) => {}
            Err(e) => tracing::debug!(order_id = %id, error = %e, "reservation not expired"),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_and_format() {
        for (raw, secs) in [
            ("P7D", 604_800),
            ("PT2S", 2),
            ("PT36H", 129_600),
            ("P1DT12H", 129_600),
            ("P2W", 1_209_600),
            ("PT1M30S", 90),
            ("2", 2),
            ("86400", 86_400),
        ] {
            assert_eq!(parse_duration(raw), Some(secs), "{raw}");
        }
        for bad in [
            "", "P", "PT", "P1Y", "P1M", "PT0S", "0", "7d", "P1.5D", "PT2S3", "P1W2D", "-5",
            "PT1S1H", "P3651D",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
        assert_eq!(format_duration(604_800), "P7D");
        assert_eq!(format_duration(2), "PT2S");
        assert_eq!(format_duration(90_061), "P1DT1H1M1S");
        assert_eq!(format_duration(3600), "PT1H");
        for s in [1, 59, 3600, 86_399, 86_400, 90_061, 1_209_600] {
            assert_eq!(parse_duration(&format_duration(s)), Some(s));
        }
        assert!(duration_field("autoReleaseAfter", &json!(5)).is_ok());
        let e = duration_field("autoReleaseAfter", &json!("soon")).unwrap_err();
        assert_eq!(e.code.as_str(), "VALIDATION_ERROR");
        assert!(duration_field("autoReleaseAfter", &json!(-1)).is_err());
        assert!(duration_field("autoReleaseAfter", &json!(true)).is_err());
    }
}
