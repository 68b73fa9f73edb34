//! Kubernetes resource quantities in CEL (`quantity('500m')`, `isQuantity`, comparisons and
//! arithmetic), as in the Kubernetes CEL quantity library.
//!
//! A quantity is held exactly as `±mantissa × 10^exponent` (binary suffixes multiply the
//! mantissa by a power of 1024), so `quantity('1Gi')` and `quantity('1073741824')` are equal and
//! `quantity('0.5')` equals `quantity('500m')`, with no floating-point rounding.

use std::cmp::Ordering;

use cel::common::traits::Comparer;
use cel::common::types::{CelBool, CelDouble, CelInt, CelString, INT_TYPE, STRING_TYPE, Type};
use cel::common::value::{CowVal, FromVal, StaticVal, Val};
use cel::{DeclarationError, Env, ExecutionError};

static QUANTITY_TYPE: Type = Type::new_unspecified_type("kubernetes.Quantity");

/// Most significant digits a quantity may have.
const MAX_DIGITS: usize = 36;

/// An exact quantity: `(-1)^negative × mantissa × 10^exponent`, normalized so that the mantissa
/// has no trailing zeros and zero is never negative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Quantity {
    negative: bool,
    mantissa: u128,
    exponent: i32,
}

impl Quantity {
    fn new(negative: bool, mut mantissa: u128, mut exponent: i32) -> Result<Self, String> {
        if mantissa == 0 {
            return Ok(Self { negative: false, mantissa: 0, exponent: 0 });
        }
        while mantissa.is_multiple_of(10) {
            mantissa /= 10;
            exponent = exponent.checked_add(1).ok_or("exponent out of range")?;
        }
        if mantissa >= 10u128.pow(MAX_DIGITS as u32) {
            return Err(format!("more than {MAX_DIGITS} significant digits"));
        }
        Ok(Self { negative, mantissa, exponent })
    }

    /// Parses Kubernetes quantity syntax: `<sign><number><suffix>`, the suffix one of
    /// `n u m k M G T P E`, `Ki Mi Gi Ti Pi Ei`, or `e<int>` / `E<int>`.
    pub(super) fn parse(s: &str) -> Result<Self, String> {
        let (negative, rest) = match s.as_bytes().first() {
            Some(b'-') => (true, &s[1..]),
            Some(b'+') => (false, &s[1..]),
            _ => (false, s),
        };
        let number_len = rest.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let (number, suffix) = rest.split_at(number_len);
        let (int, frac) = number.split_once('.').unwrap_or((number, ""));
        if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
            return Err(format!("`{s}` is not a quantity"));
        }
        let digits = format!("{int}{frac}");
        let digits = digits.trim_start_matches('0');
        let significant = digits.trim_end_matches('0');
        if significant.len() > MAX_DIGITS {
            return Err(format!("`{s}` has more than {MAX_DIGITS} significant digits"));
        }
        let mantissa: u128 =
            if significant.is_empty() { 0 } else { significant.parse().map_err(|e| format!("{e}"))? };
        let range = || format!("`{s}` is out of range");
        let scale = i32::try_from(digits.len() - significant.len()).map_err(|_| range())?;
        let frac_len = i32::try_from(frac.len()).map_err(|_| range())?;
        let (mantissa, exponent) = match suffix {
            "" => (mantissa, 0),
            "n" => (mantissa, -9),
            "u" => (mantissa, -6),
            "m" => (mantissa, -3),
            "k" => (mantissa, 3),
            "M" => (mantissa, 6),
            "G" => (mantissa, 9),
            "T" => (mantissa, 12),
            "P" => (mantissa, 15),
            "E" => (mantissa, 18),
            "Ki" | "Mi" | "Gi" | "Ti" | "Pi" | "Ei" => {
                let power =
                    1 + ["Ki", "Mi", "Gi", "Ti", "Pi", "Ei"].iter().position(|p| *p == suffix).unwrap_or(0);
                let factor = 1u128 << (10 * power);
                (mantissa.checked_mul(factor).ok_or_else(range)?, 0)
            }
            _ => match suffix.strip_prefix(['e', 'E']) {
                Some(e) if !e.is_empty() => {
                    (mantissa, e.parse::<i32>().map_err(|_| format!("`{s}` is not a quantity"))?)
                }
                _ => return Err(format!("`{s}` is not a quantity (unknown suffix `{suffix}`)")),
            },
        };
        let exponent = exponent.checked_add(scale).and_then(|e| e.checked_sub(frac_len)).ok_or_else(range)?;
        Self::new(negative, mantissa, exponent).map_err(|e| format!("`{s}`: {e}"))
    }

    fn signum(&self) -> i64 {
        match (self.mantissa, self.negative) {
            (0, _) => 0,
            (_, true) => -1,
            (_, false) => 1,
        }
    }

    /// Exact comparison.
    pub(super) fn compare(&self, other: &Self) -> Ordering {
        let by_sign = self.signum().cmp(&other.signum());
        if by_sign != Ordering::Equal || self.mantissa == 0 {
            return by_sign;
        }
        let (a, b) = (self.mantissa.to_string(), other.mantissa.to_string());
        // Order of magnitude first, then the digits, padded to equal length.
        let magnitude = |digits: &str, e: i32| digits.len() as i64 + i64::from(e);
        let abs = magnitude(&a, self.exponent).cmp(&magnitude(&b, other.exponent)).then_with(|| {
            let width = a.len().max(b.len());
            format!("{a:0<width$}").cmp(&format!("{b:0<width$}"))
        });
        if self.negative { abs.reverse() } else { abs }
    }

    fn as_integer(&self) -> Option<i64> {
        let exponent = u32::try_from(self.exponent).ok()?;
        let magnitude = self.mantissa.checked_mul(10u128.checked_pow(exponent)?)?;
        let magnitude = i128::try_from(magnitude).ok()?;
        i64::try_from(if self.negative { -magnitude } else { magnitude }).ok()
    }

    fn as_float(&self) -> f64 {
        let v = self.mantissa as f64 * 10f64.powi(self.exponent);
        if self.negative { -v } else { v }
    }

    fn add(&self, other: &Self) -> Result<Self, String> {
        let overflow = || "quantity overflow".to_owned();
        let exponent = self.exponent.min(other.exponent);
        let scaled = |q: &Self| -> Result<i128, String> {
            let shift = u32::try_from(q.exponent - exponent).map_err(|_| overflow())?;
            let m = q
                .mantissa
                .checked_mul(10u128.checked_pow(shift).ok_or_else(overflow)?)
                .ok_or_else(overflow)?;
            let m = i128::try_from(m).map_err(|_| overflow())?;
            Ok(if q.negative { -m } else { m })
        };
        let sum = scaled(self)?.checked_add(scaled(other)?).ok_or_else(overflow)?;
        Self::new(sum < 0, sum.unsigned_abs(), exponent)
    }

    fn negated(self) -> Self {
        Self { negative: !self.negative && self.mantissa != 0, ..self }
    }
}

impl Val for Quantity {
    fn get_type(&self) -> &Type {
        &QUANTITY_TYPE
    }
    fn cel_type() -> &'static Type {
        &QUANTITY_TYPE
    }
    fn as_comparer(&self) -> Option<&dyn Comparer> {
        Some(self)
    }
    fn equals(&self, other: &dyn Val) -> bool {
        other.downcast_ref::<Quantity>().is_some_and(|o| self.compare(o) == Ordering::Equal)
    }
    fn clone_as_boxed<'v>(&self) -> Box<dyn Val + 'v>
    where
        Self: 'v,
    {
        Box::new(*self)
    }
    fn as_any(&self) -> Option<&dyn std::any::Any> {
        Some(self)
    }
}

impl StaticVal for Quantity {}

impl Comparer for Quantity {
    fn compare(&self, rhs: &dyn Val) -> Result<Ordering, ExecutionError> {
        rhs.downcast_ref::<Quantity>().map(|o| Quantity::compare(self, o)).ok_or_else(|| {
            ExecutionError::no_such_overload(
                "compare",
                vec![QUANTITY_TYPE.name().into(), rhs.get_type().name().into()],
            )
        })
    }
}

fn fail(function: &str) -> impl Fn(String) -> ExecutionError + '_ {
    move |e| ExecutionError::function_error(function, e)
}

fn quantity(s: &CelString<'_>) -> Result<Quantity, ExecutionError> {
    Quantity::parse(s.inner()).map_err(fail("quantity"))
}

fn is_quantity(s: &CelString<'_>) -> CelBool {
    CelBool::from(Quantity::parse(s.inner()).is_ok())
}

fn sign(q: &Quantity) -> CelInt {
    CelInt::from(q.signum())
}

fn is_integer(q: &Quantity) -> CelBool {
    CelBool::from(q.as_integer().is_some())
}

fn as_integer(q: &Quantity) -> Result<CelInt, ExecutionError> {
    q.as_integer()
        .map(CelInt::from)
        .ok_or_else(|| fail("asInteger")("not an integer in the int64 range".into()))
}

fn as_approximate_float(q: &Quantity) -> CelDouble {
    CelDouble::from(q.as_float())
}

fn is_less_than(a: &Quantity, b: &Quantity) -> CelBool {
    CelBool::from(a.compare(b) == Ordering::Less)
}

fn is_greater_than(a: &Quantity, b: &Quantity) -> CelBool {
    CelBool::from(a.compare(b) == Ordering::Greater)
}

fn compare_to(a: &Quantity, b: &Quantity) -> CelInt {
    CelInt::from(a.compare(b) as i64)
}

fn int_quantity(i: &CelInt) -> Result<Quantity, ExecutionError> {
    let i = *i.inner();
    Quantity::new(i < 0, u128::from(i.unsigned_abs()), 0).map_err(fail("quantity"))
}

fn add(a: &Quantity, b: &Quantity) -> Result<Quantity, ExecutionError> {
    a.add(b).map_err(fail("add"))
}

fn add_int(a: &Quantity, b: &CelInt) -> Result<Quantity, ExecutionError> {
    add(a, &int_quantity(b)?)
}

fn sub(a: &Quantity, b: &Quantity) -> Result<Quantity, ExecutionError> {
    a.add(&b.negated()).map_err(fail("sub"))
}

fn sub_int(a: &Quantity, b: &CelInt) -> Result<Quantity, ExecutionError> {
    sub(a, &int_quantity(b)?)
}

/// Declares `quantity`, `isQuantity` and the member functions of quantities.
pub(super) fn register(env: &mut Env) -> Result<(), DeclarationError> {
    fn lift<'b, 'v, T: Val + 'static>(
        r: Result<T, ExecutionError>,
    ) -> Result<CowVal<'b, 'v>, ExecutionError> {
        r.map(CowVal::owned)
    }
    macro_rules! unary {
        ($name:literal, $id:literal, $target:expr, $f:expr) => {
            env.add_member_overload($name, $id, $target, vec![], |a| {
                let [a] = take::<1>(a)?;
                lift(Ok($f(arg::<Quantity>(&a)?)))
            })?
        };
    }
    let q = || QUANTITY_TYPE.to_owned();
    env.add_overload("quantity", "quantity(string)", vec![STRING_TYPE], |a| {
        let [s] = take::<1>(a)?;
        lift(quantity(arg::<CelString>(&s)?))
    })?;
    env.add_overload("isQuantity", "isQuantity(string)", vec![STRING_TYPE], |a| {
        let [s] = take::<1>(a)?;
        lift(Ok(is_quantity(arg::<CelString>(&s)?)))
    })?;
    unary!("sign", "quantity.sign()", q(), sign);
    unary!("isInteger", "quantity.isInteger()", q(), is_integer);
    unary!("asApproximateFloat", "quantity.asApproximateFloat()", q(), as_approximate_float);
    env.add_member_overload("asInteger", "quantity.asInteger()", q(), vec![], |a| {
        let [a] = take::<1>(a)?;
        lift(as_integer(arg::<Quantity>(&a)?))
    })?;
    macro_rules! binary {
        ($name:literal, $id:literal, $f:expr) => {
            env.add_member_overload($name, $id, q(), vec![q()], |a| {
                let [a, b] = take::<2>(a)?;
                lift(Ok($f(arg::<Quantity>(&a)?, arg::<Quantity>(&b)?)))
            })?
        };
    }
    binary!("isLessThan", "quantity.isLessThan(quantity)", is_less_than);
    binary!("isGreaterThan", "quantity.isGreaterThan(quantity)", is_greater_than);
    binary!("compareTo", "quantity.compareTo(quantity)", compare_to);
    macro_rules! arithmetic {
        ($name:literal, $id:literal, $idint:literal, $f:expr, $fint:expr) => {
            env.add_member_overload($name, $id, q(), vec![q()], |a| {
                let [a, b] = take::<2>(a)?;
                lift($f(arg::<Quantity>(&a)?, arg::<Quantity>(&b)?))
            })?;
            env.add_member_overload($name, $idint, q(), vec![INT_TYPE], |a| {
                let [a, b] = take::<2>(a)?;
                lift($fint(arg::<Quantity>(&a)?, arg::<CelInt>(&b)?))
            })?;
        };
    }
    arithmetic!("add", "quantity.add(quantity)", "quantity.add(int)", add, add_int);
    arithmetic!("sub", "quantity.sub(quantity)", "quantity.sub(int)", sub, sub_int);
    Ok(())
}

fn take<'b, 'v, const N: usize>(args: Vec<CowVal<'b, 'v>>) -> Result<[CowVal<'b, 'v>; N], ExecutionError> {
    args.try_into().map_err(|a: Vec<_>| ExecutionError::invalid_argument_count(N, a.len()))
}

fn arg<'a, 'v, T: FromVal<'a, 'v> + Val>(v: &'a CowVal<'_, 'v>) -> Result<&'a T, ExecutionError> {
    v.downcast_ref::<T>().ok_or_else(|| ExecutionError::UnexpectedType {
        got: v.get_type().name().to_owned(),
        want: T::cel_type().name().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use rstest::rstest;

    use super::*;

    fn q(negative: bool, mantissa: u128, exponent: i32) -> Quantity {
        Quantity { negative, mantissa, exponent }
    }

    #[rstest]
    #[case::plain("1", q(false, 1, 0))]
    #[case::trailing_zeros("1000", q(false, 1, 3))]
    #[case::milli("500m", q(false, 5, -1))]
    #[case::fraction("1.5", q(false, 15, -1))]
    #[case::leading_dot(".5", q(false, 5, -1))]
    #[case::trailing_dot("5.", q(false, 5, 0))]
    #[case::nano("3n", q(false, 3, -9))]
    #[case::kilo("2k", q(false, 2, 3))]
    #[case::exa("1E", q(false, 1, 18))]
    #[case::kibi("1Ki", q(false, 1024, 0))]
    #[case::gibi_fraction("1.5Gi", q(false, 1_610_612_736, 0))]
    #[case::exponent("12e3", q(false, 12, 3))]
    #[case::negative_exponent("1E-3", q(false, 1, -3))]
    #[case::negative("-250m", q(true, 25, -2))]
    #[case::plus("+1", q(false, 1, 0))]
    #[case::zero_is_not_negative("-0.000", q(false, 0, 0))]
    fn parses(#[case] s: &str, #[case] expected: Quantity) {
        assert_eq!(Quantity::parse(s), Ok(expected));
    }

    #[rstest]
    fn refuses(
        #[values("", "-", ".", "1K", "1.2.3", "--1", "Mi", "1e", "1 Mi", "1mi", "0x10", "1e1.5")] s: &str,
    ) {
        assert!(Quantity::parse(s).is_err(), "{s}");
    }

    #[rstest]
    #[case("1Gi", "1073741824", Ordering::Equal)]
    #[case("0.5", "500m", Ordering::Equal)]
    #[case("999m", "1", Ordering::Less)]
    #[case("1.0001", "1", Ordering::Greater)]
    #[case("-1", "1m", Ordering::Less)]
    #[case("-2", "-1", Ordering::Less)]
    #[case("1e3", "1k", Ordering::Equal)]
    #[case("1Ki", "1k", Ordering::Greater)]
    #[case("0", "-0", Ordering::Equal)]
    #[case("1E", "999999999999999999", Ordering::Greater)]
    fn compares_exactly(#[case] a: &str, #[case] b: &str, #[case] expected: Ordering) {
        let (a, b) = (Quantity::parse(a).unwrap(), Quantity::parse(b).unwrap());
        assert_eq!(a.compare(&b), expected);
        assert_eq!(b.compare(&a), expected.reverse());
    }

    #[test]
    fn integers_and_floats() {
        assert_eq!(Quantity::parse("2Ki").unwrap().as_integer(), Some(2048));
        assert_eq!(Quantity::parse("1.5").unwrap().as_integer(), None);
        assert_eq!(Quantity::parse("10E").unwrap().as_integer(), None, "beyond int64");
        assert_eq!(Quantity::parse("-250m").unwrap().as_float(), -0.25);
    }

    #[test]
    fn addition_aligns_exponents() {
        let sum = Quantity::parse("1").unwrap().add(&Quantity::parse("250m").unwrap()).unwrap();
        assert_eq!(sum, Quantity::parse("1.25").unwrap());
        let zero = Quantity::parse("1Gi").unwrap().add(&Quantity::parse("1Gi").unwrap().negated()).unwrap();
        assert_eq!(zero, q(false, 0, 0));
    }
}
