//! Sprig's arithmetic: integer functions convert with spf13/cast (so `"3"`
//! and `3.9` count as 3) and return `int64`; the `f` forms work in floats.

use gotmpl::Value;

use super::{Cx, FnError, FnResult, P, spec, str_arg, to_float64, to_int64};

pub(super) const FUNCS: &[super::FuncSpec] = &[
    spec("add", &[], Some(P::Any), |cx, a| {
        Ok(Value::Int(
            a.iter().fold(0i64, |acc, v| acc.wrapping_add(i(cx, v))),
        ))
    }),
    spec("add1", &[P::Any], None, |cx, a| {
        Ok(Value::Int(i(cx, &a[0]).wrapping_add(1)))
    }),
    spec("sub", &[P::Any, P::Any], None, |cx, a| {
        Ok(Value::Int(i(cx, &a[0]).wrapping_sub(i(cx, &a[1]))))
    }),
    spec("mul", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Int(
            a[1..]
                .iter()
                .fold(i(cx, &a[0]), |acc, v| acc.wrapping_mul(i(cx, v))),
        ))
    }),
    spec("div", &[P::Any, P::Any], None, |cx, a| {
        let d = i(cx, &a[1]);
        if d == 0 {
            return Err(FnError::Call(
                "runtime error: integer divide by zero".into(),
            ));
        }
        Ok(Value::Int(i(cx, &a[0]).wrapping_div(d)))
    }),
    spec("mod", &[P::Any, P::Any], None, |cx, a| {
        let d = i(cx, &a[1]);
        if d == 0 {
            return Err(FnError::Call(
                "runtime error: integer divide by zero".into(),
            ));
        }
        Ok(Value::Int(i(cx, &a[0]).wrapping_rem(d)))
    }),
    spec("max", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Int(a.iter().map(|v| i(cx, v)).max().unwrap_or(0)))
    }),
    spec("biggest", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Int(a.iter().map(|v| i(cx, v)).max().unwrap_or(0)))
    }),
    spec("min", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Int(a.iter().map(|v| i(cx, v)).min().unwrap_or(0)))
    }),
    spec("abs", &[P::Any], None, |cx, a| {
        Ok(Value::Int(i(cx, &a[0]).wrapping_abs()))
    }),
    spec("maxf", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Float(
            a[1..]
                .iter()
                .fold(f(cx, &a[0]), |acc, v| go_max(acc, f(cx, v))),
        ))
    }),
    spec("minf", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Float(
            a[1..]
                .iter()
                .fold(f(cx, &a[0]), |acc, v| go_min(acc, f(cx, v))),
        ))
    }),
    spec("floor", &[P::Any], None, |cx, a| {
        Ok(Value::Float(f(cx, &a[0]).floor()))
    }),
    spec("ceil", &[P::Any], None, |cx, a| {
        Ok(Value::Float(f(cx, &a[0]).ceil()))
    }),
    spec("round", &[P::Any, P::Int], Some(P::Any), round),
    spec("addf", &[], Some(P::Any), |cx, a| {
        Ok(Value::Float(decimal_fold(cx, 0.0, a, |x, y| x + y)))
    }),
    spec("add1f", &[P::Any], None, |cx, a| {
        Ok(Value::Float(decimal_fold(
            cx,
            f(cx, &a[0]),
            &[Value::Int(1)],
            |x, y| x + y,
        )))
    }),
    spec("subf", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Float(decimal_fold(
            cx,
            f(cx, &a[0]),
            &a[1..],
            |x, y| x - y,
        )))
    }),
    spec("mulf", &[P::Any], Some(P::Any), |cx, a| {
        Ok(Value::Float(decimal_fold(
            cx,
            f(cx, &a[0]),
            &a[1..],
            |x, y| x * y,
        )))
    }),
    spec("divf", &[P::Any], Some(P::Any), |cx, a| {
        if a[1..].iter().any(|v| f(cx, v) == 0.0) {
            return Err(FnError::Call("decimal division by 0".into()));
        }
        Ok(Value::Float(decimal_fold(
            cx,
            f(cx, &a[0]),
            &a[1..],
            |x, y| x / y,
        )))
    }),
    spec("int", &[P::Any], None, |cx, a| Ok(Value::Int(i(cx, &a[0])))),
    spec("int64", &[P::Any], None, |cx, a| {
        Ok(Value::Int(i(cx, &a[0])))
    }),
    spec("float64", &[P::Any], None, |cx, a| {
        Ok(Value::Float(f(cx, &a[0])))
    }),
    spec("atoi", &[P::Str], None, |_, a| {
        Ok(Value::Int(atoi(str_arg(&a[0]))))
    }),
    spec("toDecimal", &[P::Any], None, |cx, a| {
        let text = crate::render::gofmt::sprint(cx.objects(), &a[..1]);
        Ok(Value::Int(i64::from_str_radix(&text, 8).unwrap_or(0)))
    }),
];

fn i(cx: &Cx<'_>, v: &Value) -> i64 {
    to_int64(cx.objects(), v)
}

fn f(cx: &Cx<'_>, v: &Value) -> f64 {
    to_float64(cx.objects(), v)
}

/// Go's `math.Max`/`math.Min` (NaN wins).
fn go_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

fn go_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

/// Go's `strconv.Atoi` (decimal, optional sign), 0 on error as Sprig wraps it.
fn atoi(s: &str) -> i64 {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return 0;
    }
    s.parse().unwrap_or(0)
}

/// Sprig's `execDecimalOp`: each operand through shopspring/decimal, so
/// `addf 0.1 0.2` is exactly 0.3. Rounding each operand to its shortest
/// decimal form and the result to 15 significant digits gives the same
/// values for the decimal inputs charts use.
fn decimal_fold(cx: &Cx<'_>, start: f64, rest: &[Value], op: fn(f64, f64) -> f64) -> f64 {
    let r = rest.iter().fold(start, |acc, v| op(acc, f(cx, v)));
    if !r.is_finite() || r == 0.0 {
        return r;
    }
    format!("{r:.14e}").parse().unwrap_or(r)
}

fn round(cx: &Cx<'_>, a: &[Value]) -> FnResult {
    let round_on = a.get(2).map_or(0.5, |v| f(cx, v));
    let val = f(cx, &a[0]);
    let pow = 10f64.powf(super::int_arg(&a[1]) as f64);
    let digit = pow * val;
    let div = digit.fract();
    let r = if div >= round_on {
        digit.ceil()
    } else {
        digit.floor()
    };
    Ok(Value::Float(r / pow))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atoi_is_strict_decimal() {
        assert_eq!(atoi("42"), 42);
        assert_eq!(atoi("-7"), -7);
        assert_eq!(atoi("0x10"), 0);
        assert_eq!(atoi("4.2"), 0);
    }
}
