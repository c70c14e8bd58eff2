//! Airtm's JSON documents as typed structs (docs/PROVIDERS.md, Airtm; the schema names
//! are those of Airtm's OpenAPI document that section summarises).
//!
//! - **Requests** ([`CreatePayinRequest`], [`CreatePayoutRequest`]) serialise to exactly
//!   the bytes OfferHub has always sent: camelCase keys in alphabetical order (so the
//!   fields are declared alphabetically), amounts as JSON numbers with at most 2
//!   decimals from [`usd`].
//! - **Responses** ([`PayinResponse`], [`PayoutResponse`], [`UserResponse`],
//!   [`ErrorEnvelope`]) never fail on their content: unknown fields are ignored, a field
//!   of an unexpected type reads as absent, ids and texts may be strings or numbers,
//!   amounts numbers or numeric strings, statuses any text (parsed later into
//!   [`PayinStatus`]/[`PayoutStatus`], whose catch-all variants keep unknown values). A
//!   document becomes a [`Payin`], [`Payout`] or [`AirtmUser`] only when it has an id.
//! - **Amounts** are read from the JSON number's decimal text by [`amount_of`] (base
//!   units, 10^-7 USD, rounded half away from zero to cents), never by float arithmetic.
//!   `serde_json` is built without `arbitrary_precision`, so it keeps a number as the
//!   nearest `f64` and prints it back as the shortest text that reads as that same
//!   `f64`: for Airtm's amounts (cents, far below 15 significant digits) that is the
//!   value Airtm sent.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Number, Value};

use super::{
    AirtmUser, AirtmUserStatus, NewPayin, NewPayout, Payin, PayinStatus, Payout, PayoutStatus,
    amount_of, usd,
};
use crate::error::Result;
use crate::money::Amount;

/// Body of `POST /payins` (`CreatePayinRequest`; docs/PROVIDERS.md, Airtm: payins). Every
/// field is required; `amount` equals the items' total.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePayinRequest<'a> {
    /// USD as a JSON number with at most 2 decimals ([`usd`]).
    pub amount: Number,
    /// Where Airtm's checkout sends the browser when the payer cancels.
    pub cancel_uri: &'a str,
    /// Our idempotency key: the top-up id (docs/PROVIDERS.md, Airtm: idempotency).
    pub code: &'a str,
    /// Where Airtm's checkout sends the browser after paying (not a proof of payment).
    pub confirmation_uri: &'a str,
    pub description: &'a str,
    /// One item carrying the whole amount.
    pub items: Vec<PayinItem<'a>>,
}

/// One line of a payin (`items[]` of `CreatePayinRequest`).
#[derive(Clone, Debug, Serialize)]
pub struct PayinItem<'a> {
    /// USD as a JSON number with at most 2 decimals ([`usd`]).
    pub amount: Number,
    pub description: &'a str,
    pub quantity: u32,
}

impl<'a> CreatePayinRequest<'a> {
    /// The body for `p`: one item of quantity 1 carrying the whole amount. `Err`
    /// (`INVALID_AMOUNT_FORMAT` naming `amount`) when the amount has more than 2
    /// decimals.
    pub fn new(p: &NewPayin<'a>) -> Result<CreatePayinRequest<'a>> {
        let amount = usd(p.amount, "amount")?;
        Ok(CreatePayinRequest {
            amount: amount.clone(),
            cancel_uri: p.cancel_uri,
            code: p.code,
            confirmation_uri: p.confirmation_uri,
            description: p.description,
            items: vec![PayinItem {
                amount,
                description: p.description,
                quantity: 1,
            }],
        })
    }
}

/// Body of `POST /payouts` (`CreatePayoutRequest`; docs/PROVIDERS.md, Airtm: payouts),
/// with the optional `code` and `commit` always sent.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CreatePayoutRequest<'a> {
    /// The recipient: the user's linked Airtm email.
    pub airtm_user_email: &'a str,
    /// USD as a JSON number with at most 2 decimals ([`usd`]).
    pub amount: Number,
    /// Our idempotency key: the withdrawal id (docs/PROVIDERS.md, Airtm: idempotency).
    pub code: &'a str,
    /// `true`: money moves at once; `false`: it waits for `POST /payouts/{id}/commit`.
    pub commit: bool,
    pub notes: &'a str,
}

impl<'a> CreatePayoutRequest<'a> {
    /// The body for `p`. `Err` (`INVALID_AMOUNT_FORMAT` naming `amount`) when the amount
    /// has more than 2 decimals.
    pub fn new(p: &NewPayout<'a>) -> Result<CreatePayoutRequest<'a>> {
        Ok(CreatePayoutRequest {
            airtm_user_email: p.email,
            amount: usd(p.amount, "amount")?,
            code: p.code,
            commit: p.commit,
            notes: p.notes,
        })
    }
}

/// A payin as Airtm sends it (`PayinResponse`; docs/PROVIDERS.md, Airtm: payins and
/// amounts), every field optional. Amounts are base units (10^-7 USD) read from Airtm's
/// USD numbers by [`amount_of`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PayinResponse {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub code: Option<String>,
    /// Airtm's status text, any value ([`PayinStatus::parse`]).
    #[serde(deserialize_with = "text")]
    pub status: Option<String>,
    /// What the payer pays.
    #[serde(deserialize_with = "amount")]
    pub amount: Option<Amount>,
    /// What the enterprise receives (`amount − airtmFee`).
    #[serde(deserialize_with = "amount")]
    pub net_amount: Option<Amount>,
    #[serde(deserialize_with = "amount")]
    pub airtm_fee: Option<Amount>,
    /// The payer's Airtm email, once known.
    #[serde(deserialize_with = "text")]
    pub airtm_user_email: Option<String>,
    #[serde(deserialize_with = "text")]
    pub failure_reason: Option<String>,
}

impl PayinResponse {
    /// The payin it describes; `None` without an id. A missing code or status reads as
    /// empty text (which no top-up id equals, and which parses as `Other("")`).
    pub fn into_payin(self) -> Option<Payin> {
        let status_text = self.status.unwrap_or_default();
        Some(Payin {
            id: self.id?,
            code: self.code.unwrap_or_default(),
            status: PayinStatus::parse(&status_text),
            status_text,
            amount: self.amount,
            net_amount: self.net_amount,
            airtm_fee: self.airtm_fee,
            airtm_user_email: self.airtm_user_email,
            failure_reason: self.failure_reason,
        })
    }
}

/// A payout as Airtm sends it (`PayoutResponse`; docs/PROVIDERS.md, Airtm: payouts and
/// amounts), every field optional. Amounts are base units (10^-7 USD) read from Airtm's
/// USD numbers by [`amount_of`].
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct PayoutResponse {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    #[serde(deserialize_with = "text")]
    pub code: Option<String>,
    /// Airtm's status text, any value ([`PayoutStatus::parse`]).
    #[serde(deserialize_with = "text")]
    pub status: Option<String>,
    /// `grossAmount − enterpriseFee`: what the enterprise is charged.
    #[serde(deserialize_with = "amount")]
    pub amount: Option<Amount>,
    /// What the recipient receives.
    #[serde(deserialize_with = "amount")]
    pub net_amount: Option<Amount>,
    #[serde(deserialize_with = "amount")]
    pub airtm_fee: Option<Amount>,
    /// Why a payout failed (a reason code, docs/PROVIDERS.md, Airtm: error codes).
    #[serde(deserialize_with = "text")]
    pub reason_code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub reason_description: Option<String>,
}

impl PayoutResponse {
    /// The payout it describes; `None` without an id. A missing code or status reads as
    /// empty text.
    pub fn into_payout(self) -> Option<Payout> {
        let status_text = self.status.unwrap_or_default();
        Some(Payout {
            id: self.id?,
            code: self.code.unwrap_or_default(),
            status: PayoutStatus::parse(&status_text),
            status_text,
            amount: self.amount,
            net_amount: self.net_amount,
            airtm_fee: self.airtm_fee,
            reason_code: self.reason_code,
            reason_description: self.reason_description,
        })
    }
}

/// The answer of `GET /users/{email}` (docs/PROVIDERS.md, Airtm: user linking), every
/// field optional.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct UserResponse {
    #[serde(deserialize_with = "text")]
    pub id: Option<String>,
    /// `active` or `inactive`, in any case.
    #[serde(deserialize_with = "text")]
    pub status: Option<String>,
    #[serde(deserialize_with = "flag")]
    pub is_verified: Option<bool>,
    /// ISO country code.
    #[serde(deserialize_with = "text")]
    pub country: Option<String>,
}

impl UserResponse {
    /// The user it describes; `None` without an id. The status is lowercased (absent:
    /// empty), `isVerified` absent or not a boolean reads as `false`.
    pub fn into_user(self) -> Option<AirtmUser> {
        Some(AirtmUser {
            id: self.id?,
            status: AirtmUserStatus::parse(&self.status.unwrap_or_default()),
            is_verified: self.is_verified.unwrap_or(false),
            country: self.country,
        })
    }
}

/// Airtm's error body `{code, message, data}` (docs/PROVIDERS.md, Airtm: error codes);
/// `data` is not used.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct ErrorEnvelope {
    /// The reason code (`"415059"`, …).
    #[serde(deserialize_with = "text")]
    pub code: Option<String>,
    #[serde(deserialize_with = "text")]
    pub message: Option<String>,
}

/// Reads document `T` from a JSON body: `None` unless the body is an object (the
/// response types accept any object).
pub fn read<T: serde::de::DeserializeOwned>(body: &Value) -> Option<T> {
    if body.is_object() {
        T::deserialize(body).ok()
    } else {
        None
    }
}

/// A payin from a JSON body ([`PayinResponse::into_payin`]).
pub fn payin(body: &Value) -> Option<Payin> {
    read::<PayinResponse>(body)?.into_payin()
}

/// A payout from a JSON body ([`PayoutResponse::into_payout`]).
pub fn payout(body: &Value) -> Option<Payout> {
    read::<PayoutResponse>(body)?.into_payout()
}

/// A JSON value as text: a non-empty string as is, a number as its decimal text;
/// anything else is absent.
pub fn text_of(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn text<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<String>, D::Error> {
    Value::deserialize(d).map(|v| text_of(&v))
}

fn amount<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<Amount>, D::Error> {
    Value::deserialize(d).map(|v| amount_of(&v))
}

fn flag<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Option<bool>, D::Error> {
    Value::deserialize(d).map(|v| v.as_bool())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn units(s: &str) -> Option<Amount> {
        Some(Amount::parse(s).unwrap())
    }

    #[test]
    fn request_bodies_are_the_bytes_sent_before() {
        let p = NewPayin {
            code: "topup_1",
            amount: Amount::parse("50.25").unwrap(),
            description: "Balance top-up topup_1",
            confirmation_uri: "https://oh.example/c?result=confirmed",
            cancel_uri: "https://oh.example/c?result=canceled",
        };
        let amount = usd(p.amount, "amount").unwrap();
        let before = json!({
            "code": p.code,
            "amount": amount,
            "description": p.description,
            "items": [{ "description": p.description, "amount": amount, "quantity": 1 }],
            "confirmationUri": p.confirmation_uri,
            "cancelUri": p.cancel_uri,
        });
        let typed = CreatePayinRequest::new(&p).unwrap();
        assert_eq!(
            serde_json::to_vec(&typed).unwrap(),
            serde_json::to_vec(&before).unwrap()
        );
        let q = NewPayout {
            code: "wd_1",
            email: "ana@example.com",
            amount: Amount::parse("7").unwrap(),
            notes: "Withdrawal wd_1",
            commit: true,
        };
        let before = json!({
            "code": q.code,
            "airtmUserEmail": q.email,
            "amount": usd(q.amount, "amount").unwrap(),
            "notes": q.notes,
            "commit": q.commit,
        });
        let typed = serde_json::to_string(&CreatePayoutRequest::new(&q).unwrap()).unwrap();
        assert_eq!(typed, serde_json::to_string(&before).unwrap());
        assert_eq!(
            typed,
            r#"{"airtmUserEmail":"ana@example.com","amount":7.0,"code":"wd_1","commit":true,"notes":"Withdrawal wd_1"}"#
        );
        let too_precise = NewPayout {
            amount: Amount::parse("1.005").unwrap(),
            ..q
        };
        assert!(CreatePayoutRequest::new(&too_precise).is_err());
    }

    #[test]
    fn amounts_read_from_the_number_text() {
        // From the raw bytes, as the client receives them.
        let read_amount = |raw: &str| {
            let v: Value =
                serde_json::from_str(&format!(r#"{{"id":"p","amount":{raw}}}"#)).unwrap();
            payin(&v).unwrap().amount
        };
        assert_eq!(read_amount("100.1"), units("100.10"));
        assert_eq!(read_amount("1e2"), units("100"));
        assert_eq!(read_amount("0.30000000000000004"), units("0.30"));
        assert_eq!(read_amount("49.995"), units("50.00"));
        assert_eq!(read_amount("\"12.3\""), units("12.30"));
        assert_eq!(read_amount("null"), None);
        assert_eq!(read_amount("\"abc\""), None);
        assert_eq!(read_amount("[1]"), None);
        // Exactly what the former `amount_of` on the raw value gives.
        for raw in ["100.1", "1e2", "0.30000000000000004", "12345678.91", "-3.5"] {
            let v: Value = serde_json::from_str(raw).unwrap();
            assert_eq!(read_amount(raw), amount_of(&v), "{raw}");
        }
        assert_eq!(
            read_amount("100.1").map(Amount::base_units),
            Some(1_001_000_000)
        );
    }

    #[test]
    fn responses_tolerate_what_they_do_not_know() {
        let v = json!({
            "id": 42, "code": "topup_1", "status": "SOMETHING_NEW", "amount": 10,
            "netAmount": "9.9", "airtmFee": 0.1, "airtmUserEmail": "", "failureReason": {},
            "brandNew": [1, 2, 3],
        });
        let p = payin(&v).unwrap();
        assert_eq!(p.id, "42");
        assert_eq!(p.status, PayinStatus::Other("SOMETHING_NEW".into()));
        assert_eq!(p.status_text, "SOMETHING_NEW");
        assert_eq!(p.net_amount, units("9.90"));
        assert_eq!(p.airtm_fee, units("0.10"));
        assert_eq!(p.airtm_user_email, None);
        assert_eq!(p.failure_reason, None);
        let p = payout(&json!({"id": "p1", "status": 7, "reasonCode": 415016})).unwrap();
        assert_eq!(p.status, PayoutStatus::Processing("7".into()));
        assert_eq!(p.reason_code.as_deref(), Some("415016"));
        assert_eq!(p.code, "");
        assert!(payin(&json!({"status": "CREATED"})).is_none());
        assert!(payin(&json!(["p1", "c", "CREATED"])).is_none());
        assert!(payout(&Value::Null).is_none());
        let u = read::<UserResponse>(&json!({"id": "u1", "status": "ACTIVE", "isVerified": "yes"}))
            .and_then(UserResponse::into_user)
            .unwrap();
        assert_eq!((u.status.as_str(), u.is_verified), ("active", false));
        assert!(u.is_active());
        let e = read::<ErrorEnvelope>(
            &json!({"code": 415059, "message": "Recipient not found", "data": {}}),
        )
        .unwrap();
        assert_eq!(e.code.as_deref(), Some("415059"));
        assert!(read::<ErrorEnvelope>(&json!("oops")).is_none());
    }
}
