//! Typed bodies of Trustless Work's V1 API (docs/PROVIDERS.md, Trustless Work: endpoints
//! and build, sign, send): the requests OfferHub sends, camelCase as TW names them, and
//! the answers it reads, which tolerate fields OfferHub does not use.
//!
//! Amounts are [`Human`]: TW's human-unit JSON numbers (`5000` = 5,000 USDC), built only
//! through [`Human::of`], which refuses an amount a JavaScript number cannot carry.
//! Milestone indexes are decimal strings (`"0"`), as TW's builders take them.

use serde::{Deserialize, Serialize, Serializer};
use serde_json::Value;

use crate::domain::escrow::EscrowKind;
use crate::error::{Error, Result};
use crate::money::Amount;

/// An amount in TW's human units: a JSON number from the amount's exact decimal text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Human(serde_json::Number);

impl Human {
    /// `amount` (base units, 10^7 per USDC) as TW's number. Errors: 422
    /// `AMOUNT_OUT_OF_RANGE` when a double would not read back the same amount.
    pub fn of(amount: Amount) -> Result<Human> {
        match super::human(amount)? {
            Value::Number(n) => Ok(Human(n)),
            other => Err(Error::internal(format!("amount {other} is not a number"))),
        }
    }
}

/// A percent as TW takes it (`2.5` for 250 basis points), from exact text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(transparent)]
pub struct Percent(serde_json::Number);

impl Percent {
    /// Basis points → percent (`250` → `2.5`).
    pub fn from_bps(bps: u32) -> Result<Percent> {
        let text = format!("{}.{:02}", bps / 100, bps % 100);
        let text = text.trim_end_matches('0').trim_end_matches('.');
        serde_json::from_str(text)
            .map(Percent)
            .map_err(|e| Error::internal(format!("platform fee {bps} bps: {e}")))
    }
}

/// The escrow's roles (deploy): approver and release signer = buyer, service provider
/// (and, single-release, receiver) = seller, platform and dispute resolver = platform.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Roles {
    pub approver: String,
    pub service_provider: String,
    pub platform_address: String,
    pub release_signer: String,
    pub dispute_resolver: String,
    /// Single-release only (multi-release milestones name their receiver).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
}

/// The escrow's asset: the issuer's `G…` address and the code.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Trustline {
    pub address: String,
    pub symbol: String,
}

/// A milestone of a deploy: multi-release milestones carry amount and receiver.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DeployMilestone {
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Human>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub receiver: Option<String>,
}

/// `POST /deployer/{single-release|multi-release}`: the platform (`signer`) deploys an
/// escrow through TW's factory.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployEscrow {
    pub signer: String,
    pub engagement_id: String,
    pub title: String,
    pub description: String,
    pub platform_fee: Percent,
    pub trustline: Trustline,
    pub roles: Roles,
    /// Single-release: the whole amount.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub amount: Option<Human>,
    pub milestones: Vec<DeployMilestone>,
}

/// `POST /escrow/{kind}/fund-escrow`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FundEscrow {
    pub contract_id: String,
    pub signer: String,
    pub amount: Human,
}

/// `POST /escrow/{kind}/change-milestone-status` (the service provider marks a milestone).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChangeMilestoneStatus {
    pub contract_id: String,
    pub milestone_index: String,
    pub new_status: String,
    pub service_provider: String,
}

/// `POST /escrow/{kind}/approve-milestone`.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ApproveMilestone {
    pub contract_id: String,
    pub milestone_index: String,
    pub approver: String,
}

/// `POST /escrow/single-release/release-funds`; multi-release adds the milestone
/// (`release-milestone-funds`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ReleaseFunds {
    pub contract_id: String,
    pub release_signer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milestone_index: Option<String>,
}

/// `POST /escrow/single-release/dispute-escrow`; multi-release adds the milestone
/// (`dispute-milestone`).
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Dispute {
    pub contract_id: String,
    pub signer: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milestone_index: Option<String>,
}

/// One recipient of a resolution.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Distribution {
    pub address: String,
    pub amount: Human,
}

/// `POST /escrow/single-release/resolve-dispute`; multi-release adds the milestone
/// (`resolve-milestone-dispute`). The amounts must add up to what the escrow (or the
/// milestone) holds.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResolveDispute {
    pub contract_id: String,
    pub dispute_resolver: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub milestone_index: Option<String>,
    pub distributions: Vec<Distribution>,
}

/// A builder request: each answers `{status: "SUCCESS", unsignedTransaction}`.
#[derive(Clone, Debug, PartialEq)]
pub enum EscrowRequest {
    Deploy(EscrowKind, Box<DeployEscrow>),
    Fund(EscrowKind, FundEscrow),
    ChangeMilestoneStatus(EscrowKind, ChangeMilestoneStatus),
    ApproveMilestone(EscrowKind, ApproveMilestone),
    ReleaseFunds(ReleaseFunds),
    Dispute(Dispute),
    ResolveDispute(ResolveDispute),
}

impl EscrowRequest {
    /// The builder's path (`POST`).
    pub fn path(&self) -> String {
        let milestone = |i: &Option<String>| i.is_some();
        match self {
            EscrowRequest::Deploy(kind, _) => format!("/deployer/{kind}"),
            EscrowRequest::Fund(kind, _) => format!("/escrow/{kind}/fund-escrow"),
            EscrowRequest::ChangeMilestoneStatus(kind, _) => {
                format!("/escrow/{kind}/change-milestone-status")
            }
            EscrowRequest::ApproveMilestone(kind, _) => {
                format!("/escrow/{kind}/approve-milestone")
            }
            EscrowRequest::ReleaseFunds(r) if milestone(&r.milestone_index) => {
                "/escrow/multi-release/release-milestone-funds".into()
            }
            EscrowRequest::ReleaseFunds(_) => "/escrow/single-release/release-funds".into(),
            EscrowRequest::Dispute(d) if milestone(&d.milestone_index) => {
                "/escrow/multi-release/dispute-milestone".into()
            }
            EscrowRequest::Dispute(_) => "/escrow/single-release/dispute-escrow".into(),
            EscrowRequest::ResolveDispute(r) if milestone(&r.milestone_index) => {
                "/escrow/multi-release/resolve-milestone-dispute".into()
            }
            EscrowRequest::ResolveDispute(_) => "/escrow/single-release/resolve-dispute".into(),
        }
    }
}

/// The body alone (the path says which call it is).
impl Serialize for EscrowRequest {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            EscrowRequest::Deploy(_, b) => b.serialize(s),
            EscrowRequest::Fund(_, b) => b.serialize(s),
            EscrowRequest::ChangeMilestoneStatus(_, b) => b.serialize(s),
            EscrowRequest::ApproveMilestone(_, b) => b.serialize(s),
            EscrowRequest::ReleaseFunds(b) => b.serialize(s),
            EscrowRequest::Dispute(b) => b.serialize(s),
            EscrowRequest::ResolveDispute(b) => b.serialize(s),
        }
    }
}

/// `PUT /escrow/{kind}/update-escrow` body: the whole new property set of the escrow in
/// TW's camelCase shape (as `get-escrow-by-contract-ids` returns it), passed through.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateEscrow<'a> {
    pub contract_id: &'a str,
    pub signer: &'a str,
    pub escrow: &'a Value,
}

/// `POST /helper/send-transaction` body.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SendTransaction<'a> {
    pub signed_xdr: &'a str,
}

/// `POST /indexer/update-from-txHash` body.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateFromTxHash<'a> {
    pub tx_hash: &'a str,
}

/// Whether the `status` of a [`BuildAnswer`] or [`SendAnswer`] is `SUCCESS` (exact
/// text), what Trustless Work answers a call that succeeded with.
pub fn succeeded(status: Option<&str>) -> bool {
    status == Some("SUCCESS")
}

/// A builder's answer (`status`, `unsignedTransaction`); other fields are ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BuildAnswer {
    pub status: Option<String>,
    pub unsigned_transaction: Option<String>,
}

/// `send-transaction`'s answer: `status` and, for deploys, `contractId`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SendAnswer {
    pub status: Option<String>,
    pub contract_id: Option<String>,
}

/// One item of `get-multiple-escrow-balance`: the contract and its balance in human
/// units (a number or a numeric string; read exactly by [`super::units`]).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct EscrowBalance {
    pub address: Option<String>,
    pub balance: Value,
}

/// An escrow as TW's indexer lists it (`get-escrows-by-signer`): the fields OfferHub
/// reads; the rest of TW's document is ignored.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct IndexedEscrow {
    pub contract_id: Option<String>,
    pub engagement_id: Option<String>,
}

/// `serde_json::from_value` for an answer, an answer of another shape being TW's fault
/// (`PROVIDER_ERROR` naming the path).
pub fn read<T: serde::de::DeserializeOwned>(answer: Value, path: &str) -> Result<T> {
    serde_json::from_value(answer).map_err(|e| {
        Error::new(
            crate::error::ErrorCode::ProviderError,
            format!("Trustless Work answered {path} with an unexpected shape: {e}"),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn bodies_are_trustless_works_shapes() {
        let fund = EscrowRequest::Fund(
            EscrowKind::SingleRelease,
            FundEscrow {
                contract_id: "C1".into(),
                signer: "G1".into(),
                amount: Human::of(Amount::from_base_units(1_000_000_000)).unwrap(),
            },
        );
        assert_eq!(fund.path(), "/escrow/single-release/fund-escrow");
        assert_eq!(
            serde_json::to_value(&fund).unwrap(),
            json!({ "contractId": "C1", "signer": "G1", "amount": 100 })
        );
        let release = EscrowRequest::ReleaseFunds(ReleaseFunds {
            contract_id: "C1".into(),
            release_signer: "G1".into(),
            milestone_index: Some("2".into()),
        });
        assert_eq!(
            release.path(),
            "/escrow/multi-release/release-milestone-funds"
        );
        assert_eq!(
            serde_json::to_value(&release).unwrap(),
            json!({ "contractId": "C1", "releaseSigner": "G1", "milestoneIndex": "2" })
        );
        assert_eq!(
            serde_json::to_value(Percent::from_bps(250).unwrap()).unwrap(),
            json!(2.5)
        );
        assert_eq!(
            serde_json::to_value(Percent::from_bps(0).unwrap()).unwrap(),
            json!(0)
        );
    }

    #[test]
    fn answers_tolerate_unknown_fields_and_refuse_other_shapes() {
        let a: SendAnswer = read(
            json!({ "status": "SUCCESS", "contractId": "C1", "extra": [1] }),
            "/x",
        )
        .unwrap();
        assert_eq!(a.contract_id.as_deref(), Some("C1"));
        let e = read::<BuildAnswer>(json!([1, 2]), "/x").unwrap_err();
        assert_eq!(e.code, crate::error::ErrorCode::ProviderError);
    }
}
