//! `Amount`: a quantity of USD/USDC held as an `i64` count of USDC base units.
//!
//! Stellar classic assets have 7 decimal places, so `1.00` USDC is `10_000_000` base units
//! (the "stroop" scale). The API speaks decimal strings (`"100"`, `"100.00"`,
//! `"0.0000001"`); this type parses them exactly (no floats, no rounding) and formats
//! with at least two decimals (`"100.00"`, `"0.1234567"`).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of decimal places of a USDC base unit (Stellar classic asset precision).
pub const DECIMALS: u32 = 7;
/// Base units per whole unit: `10^7`.
pub const SCALE: i64 = 10_000_000;

/// A signed amount in USDC base units (1 unit = 10^-7 USDC).
///
/// Arithmetic is checked: `checked_add`/`checked_sub` return `None` on overflow instead
/// of wrapping. Parsing rejects exponents, more than 7 decimals, separators and
/// whitespace; see [`Amount::parse`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Amount(i64);

/// Why a decimal string is not an amount. The `Display` text is meant for API error
/// messages and names the rule that was broken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("must be a decimal string such as \"100.00\"")]
    Format,
    #[error("must have at most 7 decimal places")]
    TooPrecise,
    #[error("is beyond the largest amount OfferHub holds (100000000000 USDC)")]
    Overflow,
    #[error("must not be negative")]
    Negative,
    #[error("must be greater than zero")]
    NotPositive,
}

impl AmountError {
    /// The API error for this problem in `field`: 422 `AMOUNT_OUT_OF_RANGE` for
    /// [`AmountError::Overflow`], 400 `INVALID_AMOUNT_FORMAT` otherwise.
    pub fn at(&self, field: &str) -> crate::error::Error {
        match self {
            AmountError::Overflow => crate::error::Error::out_of_range(field, self),
            _ => crate::error::Error::amount(field, self),
        }
    }
}

impl Amount {
    pub const ZERO: Amount = Amount(0);

    /// The largest magnitude of an amount and of any ledger balance: 10^18 base units
    /// (100,000,000,000 USDC). Twice it still fits an `i64` (and PostgreSQL's `BIGINT`,
    /// SQLite's `INTEGER`), so `balance + amount` can be computed and checked in SQL
    /// without overflowing. Parsing refuses larger amounts ([`AmountError::Overflow`]),
    /// the ledger refuses postings that would take an account beyond it.
    pub const MAX: Amount = Amount(1_000_000_000_000_000_000);

    /// Wraps a count of base units.
    pub const fn from_base_units(units: i64) -> Self {
        Amount(units)
    }

    /// The count of base units (10^-7).
    pub const fn base_units(self) -> i64 {
        self.0
    }

    /// Parses a signed decimal string: optional leading `-`, digits, optional `.` and
    /// 1–7 fraction digits. `"100"`, `"100.00"`, `"-1.5"`, `"0.0000001"` are accepted;
    /// `"1e5"`, `"1.00000001"`, `" 1"`, `"+1"`, `"1,000"`, `".5"`, `"5."` are not.
    pub fn parse(s: &str) -> Result<Self, AmountError> {
        let parsed = Amount::parse_network(s)?;
        if parsed.0.unsigned_abs() > Amount::MAX.0.unsigned_abs() {
            return Err(AmountError::Overflow);
        }
        Ok(parsed)
    }

    /// Parses an amount as the Stellar network prints it (Horizon's balances and
    /// payments): the format of [`Amount::parse`], up to the network's own limit of
    /// `i64::MAX` base units (922,337,203,685.4775807) rather than [`Amount::MAX`]. For
    /// reading what an account holds; OfferHub's postings keep the lower limit.
    pub fn parse_network(s: &str) -> Result<Self, AmountError> {
        let (negative, body) = match s.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        let (int_part, frac_part) = match body.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (body, None),
        };
        if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
            return Err(AmountError::Format);
        }
        let frac = match frac_part {
            None => "",
            Some(f) if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) => {
                return Err(AmountError::Format);
            }
            Some(f) => f,
        };
        if frac.len() > DECIMALS as usize {
            return Err(AmountError::TooPrecise);
        }
        // 20 digits bound the integer part well inside i128 before the i64 range check.
        if int_part.len() > 20 {
            return Err(AmountError::Overflow);
        }
        let int_value: i128 = int_part.parse().map_err(|_| AmountError::Overflow)?;
        let mut frac_value: i128 = 0;
        for b in frac.bytes() {
            frac_value = frac_value * 10 + i128::from(b - b'0');
        }
        frac_value *= 10_i128.pow(DECIMALS - frac.len() as u32);
        let magnitude = int_value * i128::from(SCALE) + frac_value;
        let signed = if negative { -magnitude } else { magnitude };
        i64::try_from(signed)
            .map(Amount)
            .map_err(|_| AmountError::Overflow)
    }

    /// Parses and requires `>= 0`.
    pub fn parse_non_negative(s: &str) -> Result<Self, AmountError> {
        let a = Self::parse(s)?;
        if a.0 < 0 {
            return Err(AmountError::Negative);
        }
        Ok(a)
    }

    /// Parses and requires `> 0`.
    pub fn parse_positive(s: &str) -> Result<Self, AmountError> {
        let a = Self::parse(s)?;
        if a.0 < 0 {
            return Err(AmountError::Negative);
        }
        if a.0 == 0 {
            return Err(AmountError::NotPositive);
        }
        Ok(a)
    }

    pub fn checked_add(self, other: Amount) -> Option<Amount> {
        self.0.checked_add(other.0).map(Amount)
    }

    pub fn checked_sub(self, other: Amount) -> Option<Amount> {
        self.0.checked_sub(other.0).map(Amount)
    }

    pub fn checked_neg(self) -> Option<Amount> {
        self.0.checked_neg().map(Amount)
    }

    pub fn is_negative(self) -> bool {
        self.0 < 0
    }

    pub fn is_positive(self) -> bool {
        self.0 > 0
    }

    /// Whether `|self| <= Amount::MAX`.
    pub fn in_range(self) -> bool {
        self.0.unsigned_abs() <= Amount::MAX.0.unsigned_abs()
    }

    /// Parses the text of a JSON number in whole units (`"100"`, `"100.5"`, `"5e-7"`,
    /// `"1.5E+2"`, as providers' JavaScript writes them) exactly, without floats.
    /// [`AmountError::TooPrecise`] when it has more than 7 decimals (after the exponent).
    pub fn from_json_number(text: &str) -> Result<Self, AmountError> {
        Self::from_json_number_rounded(text, DECIMALS).and_then(|(a, exact)| {
            if exact {
                Ok(a)
            } else {
                Err(AmountError::TooPrecise)
            }
        })
    }

    /// Like [`Amount::from_json_number`], rounded half away from zero to `decimals`
    /// (at most 7) decimals; the flag says whether no rounding was needed.
    pub fn from_json_number_rounded(
        text: &str,
        decimals: u32,
    ) -> Result<(Self, bool), AmountError> {
        let decimals = decimals.min(DECIMALS);
        let (negative, body) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (mantissa, exponent) = match body.find(['e', 'E']) {
            Some(i) => {
                let e = &body[i + 1..];
                let e = e.strip_prefix('+').unwrap_or(e);
                let exp: i32 = e.parse().map_err(|_| AmountError::Format)?;
                (&body[..i], exp)
            }
            None => (body, 0),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let well_formed = !int_part.is_empty()
            && int_part.bytes().all(|b| b.is_ascii_digit())
            && frac_part.bytes().all(|b| b.is_ascii_digit())
            && !(mantissa.contains('.') && frac_part.is_empty());
        if !well_formed || exponent.unsigned_abs() > 40 {
            return Err(AmountError::Format);
        }
        // Trailing zeros of the fraction carry no value (and must not count as digits).
        let frac_part = frac_part.trim_end_matches('0');
        // value = digits × 10^shift base units.
        let digits = format!("{int_part}{frac_part}");
        let digits = digits.trim_start_matches('0');
        if digits.len() > 38 {
            return Err(AmountError::Overflow);
        }
        let n: i128 = if digits.is_empty() {
            0
        } else {
            digits.parse().map_err(|_| AmountError::Overflow)?
        };
        let frac_len = i32::try_from(frac_part.len()).map_err(|_| AmountError::Format)?;
        let shift = exponent - frac_len + DECIMALS as i32;
        let keep = DECIMALS as i32 - decimals as i32;
        let (mut units, exact) = if shift >= 0 {
            let factor = 10_i128
                .checked_pow(shift.unsigned_abs())
                .ok_or(AmountError::Overflow)?;
            (n.checked_mul(factor).ok_or(AmountError::Overflow)?, true)
        } else {
            let divisor = 10_i128
                .checked_pow(shift.unsigned_abs())
                .ok_or(AmountError::Overflow)?;
            let (q, r) = (n / divisor, n % divisor);
            // Round half away from zero on the dropped digits.
            (q + i128::from(r * 2 >= divisor), r == 0)
        };
        let mut exact = exact;
        if keep > 0 {
            let step = 10_i128.pow(keep.unsigned_abs());
            let r = units % step;
            if r != 0 {
                exact = false;
                units = units - r + if r * 2 >= step { step } else { 0 };
            }
        }
        if units > i128::from(Amount::MAX.0) {
            return Err(AmountError::Overflow);
        }
        let signed = if negative { -units } else { units };
        let amount = i64::try_from(signed)
            .map(Amount)
            .map_err(|_| AmountError::Overflow)?;
        Ok((amount, exact))
    }
}

/// Stored as an integer count of base units (`BIGINT` / `INTEGER`).
impl sqlx::Type<sqlx::Any> for Amount {
    fn type_info() -> sqlx::any::AnyTypeInfo {
        <i64 as sqlx::Type<sqlx::Any>>::type_info()
    }
}

impl<'q> sqlx::Encode<'q, sqlx::Any> for Amount {
    fn encode_by_ref(
        &self,
        buf: &mut <sqlx::Any as sqlx::Database>::ArgumentBuffer,
    ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
        <i64 as sqlx::Encode<'q, sqlx::Any>>::encode(self.0, buf)
    }
}

impl<'r> sqlx::Decode<'r, sqlx::Any> for Amount {
    fn decode(
        value: <sqlx::Any as sqlx::Database>::ValueRef<'r>,
    ) -> Result<Self, sqlx::error::BoxDynError> {
        <i64 as sqlx::Decode<'r, sqlx::Any>>::decode(value).map(Amount)
    }
}

impl fmt::Display for Amount {
    /// Formats with at least 2 and at most 7 decimals, trailing zeros beyond the second
    /// removed: `10_000_000` → `"1.00"`, `12_345_678` → `"1.2345678"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let units = self.0.unsigned_abs();
        let scale = SCALE as u64;
        let int_part = units / scale;
        let frac_part = units % scale;
        let mut frac = format!("{frac_part:07}");
        while frac.len() > 2 && frac.ends_with('0') {
            frac.pop();
        }
        let sign = if self.0 < 0 { "-" } else { "" };
        write!(f, "{sign}{int_part}.{frac}")
    }
}

impl FromStr for Amount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Amount::parse(s)
    }
}

impl Serialize for Amount {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Amount {
    /// Accepts only strings: a JSON number would invite float rounding.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        Amount::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_amounts_reach_the_networks_limit() {
        let top = "922337203685.4775807";
        assert_eq!(Amount::parse_network(top), Ok(Amount(i64::MAX)));
        assert_eq!(Amount::parse(top), Err(AmountError::Overflow));
        assert_eq!(
            Amount::parse_network("922337203685.4775808"),
            Err(AmountError::Overflow)
        );
        assert_eq!(Amount::parse("100000000000"), Ok(Amount::MAX));
        assert_eq!(Amount::parse("-100000000000"), Ok(Amount(-Amount::MAX.0)));
        assert_eq!(
            Amount::parse("100000000000.0000001"),
            Err(AmountError::Overflow)
        );
    }

    #[test]
    fn json_numbers_convert_exactly_without_floats() {
        let a = |t: &str| Amount::from_json_number(t).map(Amount::base_units);
        assert_eq!(a("100"), Ok(1_000_000_000));
        assert_eq!(a("100.5"), Ok(1_005_000_000));
        assert_eq!(a("5e-7"), Ok(5));
        assert_eq!(a("1.5E+2"), Ok(1_500_000_000));
        assert_eq!(a("-0.0000001"), Ok(-1));
        assert_eq!(a("12345678901.2345678"), Ok(123_456_789_012_345_678));
        assert_eq!(a("1e-8"), Err(AmountError::TooPrecise));
        assert_eq!(a("1.00000001"), Err(AmountError::TooPrecise));
        assert_eq!(a("1e12"), Err(AmountError::Overflow));
        for bad in [
            "", "-", "1.", ".5", "1e", "e5", "1.2.3", "0x10", "1e999", " 1",
        ] {
            assert_eq!(a(bad), Err(AmountError::Format), "{bad:?}");
        }
        let r = |t: &str| Amount::from_json_number_rounded(t, 2).unwrap();
        assert_eq!(r("12.345"), (Amount::from_base_units(123_500_000), false));
        assert_eq!(r("-12.344"), (Amount::from_base_units(-123_400_000), false));
        assert_eq!(r("12.34"), (Amount::from_base_units(123_400_000), true));
        assert_eq!(r("1.2e1"), (Amount::from_base_units(120_000_000), true));
        let zeros = format!("1.{}", "0".repeat(60));
        assert_eq!(a(&zeros), Ok(10_000_000));
    }
    use proptest::prelude::*;

    #[test]
    fn parses_valid_forms() {
        assert_eq!(Amount::parse("100").unwrap().base_units(), 1_000_000_000);
        assert_eq!(Amount::parse("100.00").unwrap().base_units(), 1_000_000_000);
        assert_eq!(Amount::parse("0.0000001").unwrap().base_units(), 1);
        assert_eq!(Amount::parse("-1.5").unwrap().base_units(), -15_000_000);
        assert_eq!(Amount::parse("0").unwrap(), Amount::ZERO);
        assert_eq!(Amount::parse("007.10").unwrap().base_units(), 71_000_000);
    }

    #[test]
    fn rejects_garbage() {
        for s in [
            "", "-", ".", "1.", ".5", "1e5", "1E5", "+1", " 1", "1 ", "1,000", "1.2.3", "abc",
            "0x10", "--1", "1.-1", "NaN", "inf", "١",
        ] {
            assert_eq!(Amount::parse(s), Err(AmountError::Format), "{s:?}");
        }
        assert_eq!(Amount::parse("1.00000001"), Err(AmountError::TooPrecise));
        for beyond in [
            "922337203685.4775808",
            "-922337203685.4775808",
            "99999999999999999999",
            "922337203685.4775807",
            "100000000000.0000001",
            "-100000000000.0000001",
            "900000000000",
        ] {
            assert_eq!(
                Amount::parse(beyond),
                Err(AmountError::Overflow),
                "{beyond}"
            );
        }
        // Amount::MAX (100 billion USDC) itself is accepted, in both signs.
        assert_eq!(Amount::parse("100000000000").unwrap(), Amount::MAX);
        assert_eq!(
            Amount::parse("-100000000000.0000000").unwrap().base_units(),
            -Amount::MAX.base_units()
        );
    }

    #[test]
    fn sign_rules() {
        assert_eq!(
            Amount::parse_non_negative("-0.01"),
            Err(AmountError::Negative)
        );
        assert_eq!(
            Amount::parse_positive("0.00"),
            Err(AmountError::NotPositive)
        );
        assert_eq!(Amount::parse_positive("-1"), Err(AmountError::Negative));
        assert!(Amount::parse_non_negative("0").is_ok());
    }

    #[test]
    fn formats_with_two_to_seven_decimals() {
        assert_eq!(Amount::from_base_units(10_000_000).to_string(), "1.00");
        assert_eq!(Amount::from_base_units(12_345_678).to_string(), "1.2345678");
        assert_eq!(Amount::from_base_units(15_000_000).to_string(), "1.50");
        assert_eq!(Amount::from_base_units(1).to_string(), "0.0000001");
        assert_eq!(Amount::from_base_units(-5_000_000).to_string(), "-0.50");
        assert_eq!(Amount::ZERO.to_string(), "0.00");
        assert_eq!(
            Amount::from_base_units(i64::MIN).to_string(),
            "-922337203685.4775808"
        );
    }

    #[test]
    fn serde_uses_strings_only() {
        let a: Amount = serde_json::from_str("\"12.5\"").unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), "\"12.50\"");
        assert!(serde_json::from_str::<Amount>("12.5").is_err());
    }

    #[test]
    fn checked_arithmetic() {
        let max = Amount::from_base_units(i64::MAX);
        assert_eq!(max.checked_add(Amount::from_base_units(1)), None);
        assert_eq!(Amount::from_base_units(i64::MIN).checked_neg(), None);
        assert_eq!(
            Amount::from_base_units(i64::MIN).checked_sub(Amount::from_base_units(1)),
            None
        );
    }

    proptest! {
        #[test]
        fn display_parse_roundtrip(units in any::<i64>()) {
            let a = Amount::from_base_units(units);
            if a.in_range() {
                prop_assert_eq!(Amount::parse(&a.to_string()).unwrap(), a);
            } else {
                prop_assert_eq!(Amount::parse(&a.to_string()), Err(AmountError::Overflow));
            }
        }

        #[test]
        fn checked_ops_agree_with_i128(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (Amount::from_base_units(a), Amount::from_base_units(b));
            let sum = i128::from(a) + i128::from(b);
            match x.checked_add(y) {
                Some(s) => prop_assert_eq!(i128::from(s.base_units()), sum),
                None => prop_assert!(sum > i128::from(i64::MAX) || sum < i128::from(i64::MIN)),
            }
            let diff = i128::from(a) - i128::from(b);
            match x.checked_sub(y) {
                Some(d) => prop_assert_eq!(i128::from(d.base_units()), diff),
                None => prop_assert!(diff > i128::from(i64::MAX) || diff < i128::from(i64::MIN)),
            }
        }

        #[test]
        fn parse_never_panics(s in "\\PC{0,30}") {
            let _ = Amount::parse(&s);
        }

        #[test]
        fn decimal_strings_parse_exactly(int in 0u64..1_000_000_000, frac in 0u32..10_000_000, digits in 1usize..=7) {
            let frac_str = format!("{frac:07}");
            let frac_str = &frac_str[..digits];
            let s = format!("{int}.{frac_str}");
            let expected = i128::from(int) * 10_000_000
                + frac_str.parse::<i128>().unwrap() * 10_i128.pow(7 - digits as u32);
            prop_assert_eq!(i128::from(Amount::parse(&s).unwrap().base_units()), expected);
        }
    }
}
