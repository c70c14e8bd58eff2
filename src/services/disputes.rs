//! Disputes (docs/API.md, Disputes — without the upstream implementation's
//! one-dispute-per-order, off-chain-only and double-event defects).
//!
//! `POST /orders/{id}/resolution/dispute` opens one: the escrow is disputed **on chain
//! at once** by the opening party's wallet (a `DISPUTE` saga); the dispute is
//! `OPENING` until that lands, then `OPEN` and the order `DISPUTED`. Support assigns it
//! (`UNDER_REVIEW`), comments, and resolves it with `FULL_RELEASE`, `FULL_REFUND` or
//! `SPLIT` (`releaseAmount + refundAmount` = the escrow balance): a `RESOLVE` saga
//! (`RESOLVING`) pays each party its net share on chain, then `RESOLVED` and the order
//! `CLOSED`. Statuses: `OPENING`, `OPEN`, `UNDER_REVIEW`, `RESOLVING`, `RESOLVED`,
//! `FAILED` (the on-chain dispute could not be opened; nothing changed).

use serde::Serialize;
use serde_json::{Value, json};
use sqlx::Row;

use crate::context::Context;
use crate::domain::order::OrderStatus;
use crate::error::{Error, ErrorCode, Result};
use crate::events::NewEvent;
use crate::ids::{self, IdKind, new_id};
use crate::money::Amount;
use crate::pagination::{Page, PageRequest};
use crate::services::escrow::{self, Parties};
use crate::services::orders;
use crate::services::sagas::{self, Party, Saga};
use crate::store::{Select, Store, Tx};

/// Reasons a dispute may be opened for.
pub const REASONS: [&str; 3] = ["NOT_DELIVERED", "QUALITY_ISSUE", "OTHER"];
pub use crate::domain::dispute::{Decision, DisputeStatus};
use crate::domain::saga::SagaKind;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Comment {
    pub id: String,
    pub author: String,
    pub body: String,
    pub created_at: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispute {
    pub id: String,
    pub order_id: String,
    /// `BUYER` or `SELLER`.
    pub opened_by: String,
    pub reason: String,
    pub evidence: Option<Value>,
    pub status: DisputeStatus,
    pub assigned_to: Option<String>,
    pub decision: Option<Decision>,
    /// Gross amounts of the decision (before fees).
    pub release_amount: Option<Amount>,
    pub refund_amount: Option<Amount>,
    pub decision_note: Option<String>,
    pub resolved_by: Option<String>,
    /// Only in single-dispute reads.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub comments: Option<Vec<Comment>>,
    pub created_at: String,
    pub updated_at: String,
    pub resolved_at: Option<String>,
    #[serde(skip)]
    seq: i64,
}

const COLUMNS: &str = "seq, id, order_id, opened_by, reason, evidence, status, assigned_to, decision, \
     release_amount, refund_amount, decision_note, resolved_by, created_at, updated_at, resolved_at";

fn from_row(r: &sqlx::any::AnyRow) -> Result<Dispute> {
    let evidence: Option<String> = r.try_get("evidence")?;
    let amount = |c: &str| -> Result<Option<Amount>> {
        Ok(r.try_get::<Option<i64>, _>(c)?.map(Amount::from_base_units))
    };
    Ok(Dispute {
        seq: r.try_get("seq")?,
        id: r.try_get("id")?,
        order_id: r.try_get("order_id")?,
        opened_by: r.try_get("opened_by")?,
        reason: r.try_get("reason")?,
        evidence: evidence.and_then(|e| serde_json::from_str(&e).ok()),
        status: r.try_get("status")?,
        assigned_to: r.try_get("assigned_to")?,
        decision: r.try_get("decision")?,
        release_amount: amount("release_amount")?,
        refund_amount: amount("refund_amount")?,
        decision_note: r.try_get("decision_note")?,
        resolved_by: r.try_get("resolved_by")?,
        comments: None,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        resolved_at: r.try_get("resolved_at")?,
    })
}

fn not_found(id: &str) -> Error {
    Error::new(
        ErrorCode::DisputeNotFound,
        format!("Dispute {id} does not exist"),
    )
}

/// One dispute with its comments; 404 `DISPUTE_NOT_FOUND`.
pub async fn get(store: &Store, id: &str) -> Result<Dispute> {
    if !ids::is_valid(IdKind::Dispute, id) {
        return Err(not_found(id));
    }
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM disputes WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(store.reader())
    .await?;
    let mut d = row
        .as_ref()
        .map(from_row)
        .transpose()?
        .ok_or_else(|| not_found(id))?;
    let rows = sqlx::query("SELECT id, author, body, created_at FROM dispute_comments WHERE dispute_id = $1 ORDER BY seq")
        .bind(id)
        .fetch_all(store.reader())
        .await?;
    d.comments = Some(
        rows.iter()
            .map(|r| {
                Ok(Comment {
                    id: r.try_get("id")?,
                    author: r.try_get("author")?,
                    body: r.try_get("body")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect::<Result<Vec<_>>>()?,
    );
    Ok(d)
}

/// The latest dispute of each of several orders (one query).
pub async fn latest_of<'c, E>(executor: E, order_ids: &[&str]) -> Result<Vec<Dispute>>
where
    E: sqlx::Executor<'c, Database = sqlx::Any>,
{
    if order_ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = crate::store::placeholders(order_ids.len());
    let mut q = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM disputes WHERE seq IN \
         (SELECT MAX(seq) FROM disputes WHERE order_id IN ({placeholders}) GROUP BY order_id)"
    )));
    for id in order_ids {
        q = q.bind(id.to_string());
    }
    q.fetch_all(executor).await?.iter().map(from_row).collect()
}

/// Filters of [`list`] (AND).
#[derive(Clone, Debug, Default)]
pub struct DisputeFilter {
    pub order_id: Option<String>,
    pub status: Option<String>,
    pub opened_by: Option<String>,
    pub assigned_to: Option<String>,
}

/// Disputes newest first.
pub async fn list(store: &Store, f: &DisputeFilter, page: &PageRequest) -> Result<Page<Dispute>> {
    let mut q = Select::new(format!("SELECT {COLUMNS} FROM disputes WHERE seq < "));
    q.push_bind(page.cursor_seq()?.unwrap_or(i64::MAX))
        .and_eq("order_id", f.order_id.as_deref())
        .and_eq("status", f.status.as_deref())
        .and_eq("opened_by", f.opened_by.as_deref())
        .and_eq("assigned_to", f.assigned_to.as_deref())
        .push(format_args!(" ORDER BY seq DESC LIMIT {}", page.limit + 1));
    let rows = q.build()?.fetch_all(store.reader()).await?;
    let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
    Ok(Page::from_rows(items, page.limit, |d| d.seq))
}

/// Opens a dispute and starts disputing the escrow on chain. `opened_by` `BUYER` or
/// `SELLER`, `reason` one of [`REASONS`], `evidence` any JSON (≤ 16 KiB). Errors: 400
/// naming the field, 404, 409 `DISPUTE_ALREADY_OPEN` / `INVALID_STATE_TRANSITION` (order
/// not `IN_PROGRESS`) / `OPERATION_IN_PROGRESS`, 422 `WALLET_NOT_READY`.
pub async fn open(
    store: &Store,
    ctx: &Context,
    order_id: &str,
    opened_by: &str,
    reason: &str,
    evidence: Option<Value>,
) -> Result<(Dispute, Saga)> {
    let party = match opened_by {
        "BUYER" => Party::Buyer,
        "SELLER" => Party::Seller,
        _ => return Err(Error::validation("openedBy", "must be BUYER or SELLER")),
    };
    if !REASONS.contains(&reason) {
        return Err(Error::validation(
            "reason",
            "must be NOT_DELIVERED, QUALITY_ISSUE or OTHER",
        ));
    }
    if let Some(e) = &evidence
        && e.to_string().len() > 16 * 1024
    {
        return Err(Error::validation(
            "evidence",
            "must be at most 16 KiB of JSON",
        ));
    }
    let order = orders::get(store, order_id).await?;
    let open_one: Option<String> = sqlx::query_scalar(
        "SELECT id FROM disputes WHERE order_id = $1 AND status IN ($2, $3, $4, $5)",
    )
    .bind(order_id)
    .bind(DisputeStatus::ACTIVE[0])
    .bind(DisputeStatus::ACTIVE[1])
    .bind(DisputeStatus::ACTIVE[2])
    .bind(DisputeStatus::ACTIVE[3])
    .fetch_optional(store.reader())
    .await?;
    if let Some(d) = open_one {
        return Err(Error::new(
            ErrorCode::DisputeAlreadyOpen,
            format!("Order {order_id} already has dispute {d}"),
        )
        .with_details(json!({ "disputeId": d })));
    }
    if order.status != OrderStatus::InProgress {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            format!("Order is {} and cannot be disputed", order.status.as_str()),
        )
        .with_details(json!({
            "currentState": order.status,
            "targetState": OrderStatus::Disputed,
            "allowedStates": [OrderStatus::InProgress],
        })));
    }
    let esc = escrow::for_order(store.reader(), order_id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::EscrowNotFound, "The order has no escrow"))?;
    Parties::load(store, &order).await?;
    let id = new_id(IdKind::Dispute);
    let saga_id = new_id(IdKind::Saga);
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    sqlx::query(
        "INSERT INTO disputes (id, order_id, opened_by, reason, evidence, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
    )
    .bind(&id)
    .bind(order_id)
    .bind(opened_by)
    .bind(reason)
    .bind(evidence.as_ref().map(Value::to_string))
    .bind(DisputeStatus::Opening)
    .bind(&now)
    .execute(db.conn())
    .await?;
    escrow::start_dispute(
        &mut db,
        &order,
        &saga_id,
        &id,
        escrow::dispute_steps(&order, &esc, party),
    )
    .await?;
    // A dispute stops the inspection clock (before the worker claimed the release).
    crate::services::lifecycle::stop_clock(
        &mut db,
        ctx,
        order_id,
        &format!("dispute {id} opened by {opened_by}"),
    )
    .await?;
    db.audit(ctx.audit("dispute.opening", "dispute", &id).after(
        json!({ "orderId": order_id, "openedBy": opened_by, "reason": reason, "sagaId": saga_id }),
    ));
    db.commit().await?;
    Ok((get(store, &id).await?, sagas::get(store, &saga_id).await?))
}

/// The on-chain dispute landed (inside the saga's completion).
pub async fn opened(db: &mut Tx, id: &str, order_id: &str) -> Result<()> {
    let now = crate::clock::now();
    sqlx::query("UPDATE disputes SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
        .bind(DisputeStatus::Open)
        .bind(&now)
        .bind(id)
        .bind(DisputeStatus::Opening)
        .execute(db.conn())
        .await?;
    let row = sqlx::query("SELECT opened_by, reason FROM disputes WHERE id = $1")
        .bind(id)
        .fetch_one(db.conn())
        .await?;
    let opened_by: String = row.try_get("opened_by")?;
    let reason: String = row.try_get("reason")?;
    let data = json!({ "disputeId": id, "orderId": order_id, "openedBy": opened_by, "reason": reason, "openedAt": now });
    db.audit(
        Context::system()
            .audit("dispute.opened", "dispute", id)
            .after(&data),
    );
    db.emit(NewEvent::new("dispute.opened", "dispute", id, data));
    db.emit(NewEvent::new(
        "order.disputed",
        "order",
        order_id,
        json!({ "orderId": order_id, "disputeId": id, "openedBy": opened_by }),
    ));
    Ok(())
}

/// The resolution landed (inside the saga's completion). Emits `dispute.resolved` once.
pub async fn resolved(db: &mut Tx, id: &str, order_id: &str, params: &Value) -> Result<()> {
    let now = crate::clock::now();
    sqlx::query(
        "UPDATE disputes SET status = $1, resolved_at = $2, updated_at = $2 WHERE id = $3 AND status = $4",
    )
    .bind(DisputeStatus::Resolved)
    .bind(&now)
    .bind(id)
    .bind(DisputeStatus::Resolving)
    .execute(db.conn())
    .await?;
    let data = json!({
        "disputeId": id, "orderId": order_id, "decision": params["decision"], "decisionNote": params["note"],
        "resolvedBy": params["resolvedBy"], "resolvedAt": now,
        "sellerAmount": params["releaseAmount"], "buyerAmount": params["refundAmount"],
    });
    db.audit(
        Context::system()
            .audit("dispute.resolved", "dispute", id)
            .after(&data),
    );
    db.emit(NewEvent::new("dispute.resolved", "dispute", id, data));
    Ok(())
}

/// Compensation: the on-chain dispute or resolution never happened.
pub async fn revert(db: &mut Tx, id: &str, kind: SagaKind, params: &Value) -> Result<()> {
    let (status, from) = if kind == SagaKind::Dispute {
        (DisputeStatus::Failed, DisputeStatus::Opening)
    } else {
        // Back where the resolution started (`OPEN` or `UNDER_REVIEW`).
        let previous = params["previousStatus"]
            .as_str()
            .and_then(DisputeStatus::parse)
            .filter(|s| DisputeStatus::DECIDABLE.contains(s))
            .unwrap_or(DisputeStatus::Open);
        (previous, DisputeStatus::Resolving)
    };
    debug_assert!(from.next().contains(&status));
    // A failed resolution forgets its decision; a failed opening keeps the row as is.
    let forget = from == DisputeStatus::Resolving;
    sqlx::query(
        "UPDATE disputes SET status = $1, decision = CASE WHEN $2 THEN NULL ELSE decision END, \
         release_amount = CASE WHEN $2 THEN NULL ELSE release_amount END, \
         refund_amount = CASE WHEN $2 THEN NULL ELSE refund_amount END, updated_at = $3 \
         WHERE id = $4 AND status = $5",
    )
    .bind(status)
    .bind(forget)
    .bind(crate::clock::now())
    .bind(id)
    .bind(from)
    .execute(db.conn())
    .await?;
    Ok(())
}

fn wrong_state(d: &Dispute, allowed: &[DisputeStatus]) -> Error {
    let names: Vec<&str> = allowed.iter().map(|s| s.as_str()).collect();
    Error::new(
        ErrorCode::InvalidStateTransition,
        format!("Dispute is {} (needs {})", d.status, names.join(" or ")),
    )
    .with_details(json!({ "currentState": d.status, "allowedStates": allowed }))
}

/// Assigns a reviewer: `OPEN | UNDER_REVIEW → UNDER_REVIEW`. Emits `dispute.under_review`.
pub async fn assign(store: &Store, ctx: &Context, id: &str, assigned_to: &str) -> Result<Dispute> {
    if assigned_to.trim().is_empty() || assigned_to.chars().count() > 200 {
        return Err(Error::validation(
            "assignedTo",
            "must be 1 to 200 characters",
        ));
    }
    let d = get(store, id).await?;
    if !DisputeStatus::DECIDABLE.contains(&d.status) {
        return Err(wrong_state(&d, &DisputeStatus::DECIDABLE));
    }
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    let r = sqlx::query(
        "UPDATE disputes SET status = $1, assigned_to = $2, updated_at = $3 WHERE id = $4 AND status IN ($5, $6)",
    )
    .bind(DisputeStatus::UnderReview)
    .bind(assigned_to)
    .bind(&now)
    .bind(id)
    .bind(DisputeStatus::DECIDABLE[0])
    .bind(DisputeStatus::DECIDABLE[1])
    .execute(db.conn())
    .await?;
    if r.rows_affected() != 1 {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            "The dispute changed concurrently; retry",
        ));
    }
    let data = json!({ "disputeId": id, "orderId": d.order_id, "reviewedBy": assigned_to, "reviewStartedAt": now });
    db.audit(
        ctx.audit("dispute.under_review", "dispute", id)
            .before(json!({ "status": d.status, "assignedTo": d.assigned_to }))
            .after(&data),
    );
    db.emit(NewEvent::new("dispute.under_review", "dispute", id, data));
    db.commit().await?;
    get(store, id).await
}

/// Adds a comment (`author` 1–200, `body` 1–5000 characters). Emits
/// `dispute.comment_added`.
pub async fn comment(
    store: &Store,
    ctx: &Context,
    id: &str,
    author: &str,
    body: &str,
) -> Result<Comment> {
    if author.trim().is_empty() || author.chars().count() > 200 {
        return Err(Error::validation("author", "must be 1 to 200 characters"));
    }
    if body.trim().is_empty() || body.chars().count() > 5000 {
        return Err(Error::validation("body", "must be 1 to 5000 characters"));
    }
    let d = get(store, id).await?;
    let cid = new_id(IdKind::DisputeComment);
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    sqlx::query("INSERT INTO dispute_comments (id, dispute_id, author, body, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&cid)
        .bind(id)
        .bind(author)
        .bind(body)
        .bind(&now)
        .execute(db.conn())
        .await?;
    let data =
        json!({ "disputeId": id, "orderId": d.order_id, "commentId": cid, "author": author });
    db.audit(
        ctx.audit("dispute.comment_added", "dispute", id)
            .after(&data),
    );
    db.emit(NewEvent::new("dispute.comment_added", "dispute", id, data));
    db.commit().await?;
    Ok(Comment {
        id: cid,
        author: author.into(),
        body: body.into(),
        created_at: now,
    })
}

/// A validated resolution: gross amounts to the seller and the buyer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Split {
    pub release: Amount,
    pub refund: Amount,
}

/// Checks a decision against the escrow balance before anything moves: `SPLIT` needs
/// `releaseAmount` and `refundAmount` (≥ 0) summing to `balance`; the full decisions
/// take the whole balance. Errors: 400 naming the field.
pub fn check_decision(
    decision: &str,
    release: Option<Amount>,
    refund: Option<Amount>,
    balance: Amount,
) -> Result<Split> {
    let decision = Decision::parse(decision).ok_or_else(|| {
        Error::validation("decision", "must be FULL_RELEASE, FULL_REFUND or SPLIT")
    })?;
    match decision {
        Decision::FullRelease => Ok(Split {
            release: balance,
            refund: Amount::ZERO,
        }),
        Decision::FullRefund => Ok(Split {
            release: Amount::ZERO,
            refund: balance,
        }),
        Decision::Split => {
            let r =
                release.ok_or_else(|| Error::amount("releaseAmount", "is required for SPLIT"))?;
            let f = refund.ok_or_else(|| Error::amount("refundAmount", "is required for SPLIT"))?;
            if r.is_negative() {
                return Err(Error::amount("releaseAmount", "must not be negative"));
            }
            if f.is_negative() {
                return Err(Error::amount("refundAmount", "must not be negative"));
            }
            if r.checked_add(f) != Some(balance) {
                return Err(Error::amount(
                    "releaseAmount",
                    format!("releaseAmount + refundAmount must equal the escrow balance {balance}"),
                )
                .with_details(json!({ "field": "releaseAmount", "escrowBalance": balance })));
            }
            Ok(Split {
                release: r,
                refund: f,
            })
        }
    }
}

/// Resolves a dispute on chain (`OPEN | UNDER_REVIEW → RESOLVING`, then `RESOLVED`
/// with the order `CLOSED`). Amounts are validated against the escrow balance before
/// anything moves. Errors: 400 naming the field, 404, 409.
pub async fn resolve(
    store: &Store,
    ctx: &Context,
    id: &str,
    decision: &str,
    release: Option<Amount>,
    refund: Option<Amount>,
    note: Option<String>,
) -> Result<(Dispute, Saga)> {
    if let Some(n) = &note
        && n.chars().count() > 2000
    {
        return Err(Error::validation("note", "must be at most 2000 characters"));
    }
    let d = get(store, id).await?;
    if !DisputeStatus::DECIDABLE.contains(&d.status) {
        return Err(wrong_state(&d, &DisputeStatus::DECIDABLE));
    }
    let order = orders::get(store, &d.order_id).await?;
    let esc = escrow::for_order(store.reader(), &order.id)
        .await?
        .ok_or_else(|| Error::new(ErrorCode::EscrowNotFound, "The order has no escrow"))?;
    let split = check_decision(decision, release, refund, esc.balance)?;
    Parties::load(store, &order).await?;
    let steps = escrow::resolution_steps(
        &order,
        &esc,
        split.release.base_units(),
        split.refund.base_units(),
    );
    let params = json!({
        "decision": decision, "releaseAmount": split.release, "refundAmount": split.refund,
        "note": note, "previousStatus": d.status, "resolvedBy": ctx.actor.id,
    });
    let saga_id = new_id(IdKind::Saga);
    let now = crate::clock::now();
    let mut db = store.begin_for(ctx).await?;
    let r = sqlx::query(
        "UPDATE disputes SET status = $9, decision = $1, release_amount = $2, refund_amount = $3, \
         decision_note = $4, resolved_by = $5, updated_at = $6 WHERE id = $7 AND status = $8",
    )
    .bind(decision)
    .bind(split.release.base_units())
    .bind(split.refund.base_units())
    .bind(&note)
    .bind(&ctx.actor.id)
    .bind(&now)
    .bind(id)
    .bind(d.status)
    .bind(DisputeStatus::Resolving)
    .execute(db.conn())
    .await?;
    if r.rows_affected() != 1 {
        return Err(Error::new(
            ErrorCode::InvalidStateTransition,
            "The dispute changed concurrently; retry",
        ));
    }
    escrow::start_resolve(&mut db, &order, &saga_id, id, steps, params.clone()).await?;
    db.audit(
        ctx.audit("dispute.resolving", "dispute", id)
            .before(json!({ "status": d.status }))
            .after(&params),
    );
    db.commit().await?;
    Ok((get(store, id).await?, sagas::get(store, &saga_id).await?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_amounts_must_equal_the_balance() {
        let b = Amount::parse("100").unwrap();
        let a = |s: &str| Some(Amount::parse(s).unwrap());
        assert_eq!(
            check_decision("SPLIT", a("80"), a("20"), b)
                .unwrap()
                .release,
            Amount::parse("80").unwrap()
        );
        let e = check_decision("SPLIT", a("80"), a("30"), b).unwrap_err();
        assert_eq!(e.code, ErrorCode::InvalidAmountFormat);
        assert!(check_decision("SPLIT", a("80"), None, b).is_err());
        assert!(check_decision("SPLIT", a("-1"), a("101"), b).is_err());
        assert_eq!(
            check_decision("FULL_REFUND", None, None, b).unwrap().refund,
            b
        );
        assert!(check_decision("HALF", None, None, b).is_err());
    }
}
