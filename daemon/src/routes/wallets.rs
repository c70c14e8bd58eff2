//! Wallets (crypto mode): `GET /users/{id}/wallet`, `GET /users/{id}/wallet/deposit`,
//! `GET /users/{id}/wallet/transactions` and `POST /users/{id}/balance/sync`. Without
//! crypto mode they answer 422 `FEATURE_NOT_ENABLED`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use offerhub::error::{Error, Result};
use offerhub::services::users;
use offerhub::services::wallets::{self, StellarContext};
use serde_json::json;

use crate::api::{ApiResult, Auth, Read, respond};
use crate::dto::wallets::{
    DepositInstructions, SyncOutcome, WalletBalances, WalletTransaction, WalletView,
};
use crate::state::AppState;

fn crypto(state: &AppState) -> Result<&Arc<StellarContext>> {
    state.stellar.as_ref().ok_or_else(|| {
        Error::feature_not_enabled(
            "Wallets need crypto mode (a Stellar network and WALLET_ENCRYPTION_KEY)",
            "WALLET_ENCRYPTION_KEY",
        )
    })
}

/// `{id, publicKey, status, failureReason, activationHash, balances: {usdc, xlm}}`;
/// balances are read from the network (null until the account exists).
#[utoipa::path(
    get,
    operation_id = "getWallet",
    path = "/users/{id}/wallet",
    tag = "Wallets",
    params(("id" = String, Path, description = "User id (usr_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "The wallet", body = crate::openapi::Data<crate::dto::wallets::WalletView>))
)]
pub async fn get(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    users::get(&state.store, &id).await?;
    let sc = crypto(&state)?;
    let w = wallets::for_user(&state.store, &id).await?;
    let on_chain = sc.horizon.account(&w.public_key).await.ok().flatten();
    let balances = match on_chain {
        Some(a) => WalletBalances {
            usdc: a
                .credit(&sc.usdc.code, &sc.usdc_issuer)
                .map(|b| b.to_string()),
            xlm: Some(a.native().to_string()),
        },
        None => WalletBalances::default(),
    };
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        WalletView::new(w, balances),
    ))
}

/// The deposit instructions (docs/API.md, Wallets (crypto mode)).
#[utoipa::path(
    get,
    operation_id = "getDepositInstructions",
    path = "/users/{id}/wallet/deposit",
    tag = "Wallets",
    params(("id" = String, Path, description = "User id (usr_…)")),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "Deposit instructions", body = crate::openapi::Data<crate::dto::wallets::DepositInstructions>))
)]
pub async fn deposit(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
) -> ApiResult {
    users::get(&state.store, &id).await?;
    let sc = crypto(&state)?;
    let w = wallets::for_user(&state.store, &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        DepositInstructions {
            provider: "crypto",
            method: "stellar_address",
            address: w.public_key,
            asset: json!({ "code": sc.usdc.code, "issuer": sc.usdc_issuer }),
            network: state.config.network.as_str().to_string(),
            wallet_status: w.status,
            instructions: "Send USDC to this Stellar address. Deposits are detected automatically within seconds.",
        },
    ))
}

/// `POST /users/{id}/balance/sync` (write): replays this wallet's payment history
/// (crediting, exactly once, any deposit not yet credited), then compares the wallet
/// with the ledger.
#[utoipa::path(
    post,
    operation_id = "syncBalance",
    path = "/users/{id}/balance/sync",
    tag = "Wallets",
    params(("id" = String, Path, description = "User id (usr_…)")),
    security(("bearer" = ["write"])),
    responses((status = 200, description = "Missed deposits credited; the comparison with the ledger", body = crate::openapi::Data<crate::dto::wallets::SyncOutcome>))
)]
pub async fn sync(
    State(state): State<AppState>,
    auth: crate::api::Auth<crate::api::Write>,
    Path(id): Path<String>,
) -> ApiResult {
    users::get(&state.store, &id).await?;
    let sc = crypto(&state)?;
    let w = wallets::for_user(&state.store, &id).await?;
    let credited =
        offerhub::services::deposits::backfill_account(&state.store, sc, &w.public_key).await?;
    let check = offerhub::services::reconcile::user(&state.store, sc, &id).await?;
    let balance = offerhub::ledger::balance(state.store.reader(), &id).await?;
    Ok(respond(
        StatusCode::OK,
        &auth.request_id,
        SyncOutcome {
            deposits_credited: u64::try_from(credited).unwrap_or(u64::MAX),
            reconciliation: json!(check),
            balance: balance.into(),
        },
    ))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TxQuery {
    /// Page size, 1–100.
    #[param(minimum = 1, maximum = 100, default = 20)]
    limit: Option<u32>,
    cursor: Option<String>,
}

/// `GET /users/{id}/wallet/transactions` (read): the wallet's on-chain movements, newest
/// first: `{id, type, direction (in|out), asset, amount, from, to, transactionHash,
/// createdAt}`; `meta.pagination.nextCursor` is the last record's paging token.
#[utoipa::path(
    get,
    operation_id = "listWalletTransactions",
    path = "/users/{id}/wallet/transactions",
    tag = "Wallets",
    params(("id" = String, Path, description = "User id (usr_…)"), TxQuery),
    security(("bearer" = ["read"])),
    responses((status = 200, description = "On-chain movements, newest first", body = crate::openapi::Page<crate::dto::wallets::WalletTransaction>))
)]
pub async fn transactions(
    State(state): State<AppState>,
    auth: Auth<Read>,
    Path(id): Path<String>,
    crate::api::ApiQuery(q): crate::api::ApiQuery<TxQuery>,
) -> ApiResult {
    if let Some(c) = q.cursor.as_deref()
        && !c.is_empty()
        && !offerhub::stellar::horizon::is_paging_token(c)
    {
        return Err(Error::validation(
            "cursor",
            "must be a nextCursor value from a previous page (a decimal paging token)",
        )
        .into());
    }
    users::get(&state.store, &id).await?;
    let sc = crypto(&state)?;
    let w = wallets::for_user(&state.store, &id).await?;
    let limit = offerhub::pagination::PageRequest::new(q.limit, None)?.limit;
    let records = sc
        .horizon
        .account_payments(&w.public_key, q.cursor.as_deref(), limit)
        .await?;
    let items: Vec<WalletTransaction> = records
        .iter()
        .flat_map(|r| WalletTransaction::from_record(r, &w.public_key))
        .collect();
    let next = if records.len() as u32 == limit {
        records
            .last()
            .and_then(|r| r["paging_token"].as_str().map(str::to_string))
    } else {
        None
    };
    Ok(crate::api::respond_page_with(
        &auth.request_id,
        items,
        next.is_some(),
        next,
        json!({}),
    ))
}
