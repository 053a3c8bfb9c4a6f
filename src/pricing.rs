//! The model price catalog and exact cost math (rust_decimal, never floats).

use std::cell::RefCell;
use std::collections::HashMap;
use std::str::FromStr;

use pgrx::prelude::*;
use pgrx::{AnyNumeric, Uuid};
use rust_decimal::Decimal;

use pgrx::pg_sys::panic::ErrorReport;

use crate::errors::{guarded, PgResult, Result, UsageError};
use crate::identity::{caller, org_read_scope, require_trusted};
use crate::relcache::Stamp;

pub use crate::limits::{MAX_RATE, MAX_RATE_SCALE};
use crate::validate::valid_provider;

/// USD per million tokens for each kind of token. A bucket without a price
/// (None) is never priced at another bucket's rate: its tokens cost nothing
/// and the request records the bucket as unpriced (list_unknown_models).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rates {
    pub input: Decimal,
    pub output: Decimal,
    pub cache_read: Option<Decimal>,
    pub cache_write: Option<Decimal>,
    pub reasoning: Option<Decimal>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: i64,
    pub output: i64,
    pub cache_read: i64,
    pub cache_write: i64,
    pub reasoning: i64,
}

/// Exact costs in USD. `total` is what was paid (zero for responses served
/// from the application's cache); `potential` what it would have cost.
/// `unpriced`: buckets with tokens but no price in the version used.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Costs {
    pub input: Decimal,
    pub output: Decimal,
    pub cache_read: Decimal,
    pub cache_write: Decimal,
    pub reasoning: Decimal,
    pub total: Decimal,
    pub potential: Decimal,
    pub unpriced: Vec<&'static str>,
}

/// tokens * rate / 1e6, exactly: the division is a shift of the scale.
/// Within MAX_TOKENS and MAX_RATE (9 decimals) the product fits the 96-bit
/// mantissa and the scale stays under 28, so this cannot fail.
fn token_cost(tokens: i64, rate: Decimal) -> Result<Decimal> {
    let mut v = Decimal::from(tokens)
        .checked_mul(rate)
        .ok_or_else(|| UsageError::out_of_range("cost", "overflow"))?;
    let scale = v.scale() + 6;
    if scale > 28 {
        return Err(UsageError::out_of_range("cost", "too many decimal places"));
    }
    v.set_scale(scale)
        .map_err(|e| UsageError::Internal(e.to_string()))?;
    Ok(v.normalize())
}

pub fn compute_costs(t: &Tokens, rates: Option<&Rates>, cached: bool) -> Result<Costs> {
    let Some(r) = rates else {
        return Ok(Costs::default());
    };
    let mut unpriced = Vec::new();
    let mut optional =
        |name: &'static str, tokens: i64, rate: Option<Decimal>| -> Result<Decimal> {
            match rate {
                Some(rate) => token_cost(tokens, rate),
                None => {
                    if tokens > 0 {
                        unpriced.push(name);
                    }
                    Ok(Decimal::ZERO)
                }
            }
        };
    let parts = [
        token_cost(t.input, r.input)?,
        token_cost(t.output, r.output)?,
        optional("cache_read", t.cache_read, r.cache_read)?,
        optional("cache_write", t.cache_write, r.cache_write)?,
        optional("reasoning", t.reasoning, r.reasoning)?,
    ];
    let potential = parts.iter().copied().sum::<Decimal>().normalize();
    if cached {
        return Ok(Costs {
            potential,
            unpriced,
            ..Costs::default()
        });
    }
    let [input, output, cache_read, cache_write, reasoning] = parts;
    Ok(Costs {
        input,
        output,
        cache_read,
        cache_write,
        reasoning,
        total: potential,
        potential,
        unpriced,
    })
}

pub fn to_numeric(d: Decimal) -> Result<AnyNumeric> {
    // Most cost buckets of most requests are zero: no text round trip.
    if d.is_zero() {
        return Ok(AnyNumeric::from(0i32));
    }
    AnyNumeric::try_from(d.to_string().as_str()).map_err(|e| UsageError::Internal(e.to_string()))
}

pub fn from_numeric_text(s: &str) -> Result<Decimal> {
    Decimal::from_str(s).map_err(|e| UsageError::Internal(format!("bad numeric {s}: {e}")))
}

/// A price version from the catalog.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Price {
    pub price_id: i32,
    pub provider: String,
    pub rates: Rates,
}

/// One version of the catalog, as the per-backend cache holds it.
struct Version {
    effective_from: i64,
    price: Price,
}

/// A model's price versions, newest first, and its default provider: the
/// one that priced the model first (lowest price_id), used when a request
/// names no provider.
#[derive(Default)]
struct ModelPrices {
    versions: Vec<Version>,
    default_provider: String,
    first_price_id: i32,
}

type Catalog = HashMap<String, ModelPrices>;

thread_local! {
    /// The whole price catalog by model (it is small and read on every
    /// logged request), with the stamp it was loaded at.
    static CATALOG: RefCell<Option<(Stamp, Catalog)>> = const { RefCell::new(None) };
}

fn load_catalog() -> Result<Catalog> {
    let mut map = Catalog::new();
    Spi::connect(|c| -> Result<()> {
        let rows = c.select(
            "SELECT p.model, p.price_id, p.provider, p.effective_from, p.input_usd_per_mtok::text, \
             p.output_usd_per_mtok::text, p.cache_read_usd_per_mtok::text, \
             p.cache_write_usd_per_mtok::text, p.reasoning_usd_per_mtok::text \
             FROM usage_tracker.model_prices p ORDER BY p.model, p.effective_from DESC, p.price_id DESC",
            None,
            &[],
        )?;
        for row in rows {
            let text = |i: usize| -> Result<Decimal> {
                from_numeric_text(&row.get::<String>(i)?.unwrap_or_default())
            };
            let optional = |i: usize| -> Result<Option<Decimal>> {
                row.get::<String>(i)?
                    .map(|t| from_numeric_text(&t))
                    .transpose()
            };
            let model = row.get::<String>(1)?.unwrap_or_default();
            let from = row
                .get::<pgrx::datum::TimestampWithTimeZone>(4)?
                .map(|t| t.into_inner())
                .unwrap_or(i64::MIN);
            let v = Version {
                effective_from: from,
                price: Price {
                    price_id: row.get::<i32>(2)?.unwrap_or_default(),
                    provider: row.get::<String>(3)?.unwrap_or_default(),
                    rates: Rates {
                        input: text(5)?,
                        output: text(6)?,
                        cache_read: optional(7)?,
                        cache_write: optional(8)?,
                        reasoning: optional(9)?,
                    },
                },
            };
            let m = map.entry(model).or_default();
            if m.versions.is_empty() || v.price.price_id < m.first_price_id {
                m.first_price_id = v.price.price_id;
                m.default_provider = v.price.provider.clone();
            }
            m.versions.push(v);
        }
        Ok(())
    })?;
    Ok(map)
}

/// The price in force for `model` at `at`: the version with the latest
/// effective_from not after `at` (highest price_id among equals) of the
/// provider given, or, with none given, of the model's default provider
/// (the one that priced it first: a later price for the same name from
/// another provider, say a cloud reseller, never replaces it silently).
/// Served from the per-backend copy of the catalog, reloaded after any
/// change.
pub fn price_at(
    model: &str,
    provider: Option<&str>,
    at: pgrx::datum::TimestampWithTimeZone,
) -> Result<Option<Price>> {
    let fresh = CATALOG.with(|c| matches!(&*c.borrow(), Some((stamp, _)) if stamp.is_current()));
    if !fresh {
        // Stamped first: a change seen while loading leaves the copy stale.
        let stamp = crate::relcache::stamp("usage_tracker.model_prices")?;
        let map = load_catalog()?;
        CATALOG.with(|c| *c.borrow_mut() = Some((stamp, map)));
    }
    let at = at.into_inner();
    Ok(CATALOG.with(|c| {
        c.borrow().as_ref().and_then(|(_, map)| {
            let m = map.get(model)?;
            let provider = provider.unwrap_or(&m.default_provider);
            m.versions
                .iter()
                .find(|v| v.effective_from <= at && v.price.provider == provider)
                .map(|v| v.price.clone())
        })
    }))
}

fn rate_arg(name: &'static str, v: Option<AnyNumeric>) -> Result<Option<Decimal>> {
    let Some(v) = v else { return Ok(None) };
    let d = Decimal::from_str(&v.to_string())
        .map_err(|_| UsageError::out_of_range(name, format!("{v} is not a finite price")))?;
    if d.is_sign_negative() || d > Decimal::from(MAX_RATE) {
        return Err(UsageError::out_of_range(
            name,
            format!("{d} is not between 0 and {MAX_RATE} USD per million tokens"),
        ));
    }
    if d.normalize().scale() > MAX_RATE_SCALE {
        return Err(UsageError::invalid(
            name,
            format!("{d} has more than {MAX_RATE_SCALE} decimal places"),
        ));
    }
    Ok(Some(d.normalize()))
}

#[allow(clippy::too_many_arguments)]
fn set_model_price_impl(
    provider: Option<String>,
    model: Option<String>,
    effective_from: Option<pgrx::datum::TimestampWithTimeZone>,
    input: Option<AnyNumeric>,
    output: Option<AnyNumeric>,
    cache_read: Option<AnyNumeric>,
    cache_write: Option<AnyNumeric>,
    reasoning: Option<AnyNumeric>,
) -> Result<i32> {
    require_trusted("set_model_price")?;
    let provider = provider.ok_or(UsageError::NullValue("p_provider"))?;
    let model = model.ok_or(UsageError::NullValue("p_model"))?;
    let effective_from = effective_from.ok_or(UsageError::NullValue("p_effective_from"))?;
    if !valid_provider(&provider) {
        return Err(UsageError::invalid(
            "p_provider",
            "use lower case letters, digits, '.', '_' or '-' (at most 64)",
        ));
    }
    if model.is_empty() || model.chars().count() > 200 {
        return Err(UsageError::invalid(
            "p_model",
            "must be 1 to 200 characters",
        ));
    }
    if !effective_from.is_finite() {
        return Err(UsageError::invalid(
            "p_effective_from",
            "must be a finite time",
        ));
    }
    let input = rate_arg("p_input_usd_per_mtok", input)?
        .ok_or(UsageError::NullValue("p_input_usd_per_mtok"))?;
    let output = rate_arg("p_output_usd_per_mtok", output)?
        .ok_or(UsageError::NullValue("p_output_usd_per_mtok"))?;
    // A rate not given is no price (NULL), never another bucket's rate:
    // tokens in that bucket cost nothing and list_unknown_models shows them.
    let cache_read = rate_arg("p_cache_read_usd_per_mtok", cache_read)?;
    let cache_write = rate_arg("p_cache_write_usd_per_mtok", cache_write)?;
    let reasoning = rate_arg("p_reasoning_usd_per_mtok", reasoning)?;
    let id: Option<i32> = crate::spi_util::write_one(
        "INSERT INTO usage_tracker.model_prices (provider, model, effective_from, \
         input_usd_per_mtok, output_usd_per_mtok, cache_read_usd_per_mtok, \
         cache_write_usd_per_mtok, reasoning_usd_per_mtok) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING price_id",
        &[
            provider.into(),
            model.into(),
            effective_from.into(),
            to_numeric(input)?.into(),
            to_numeric(output)?.into(),
            cache_read.map(to_numeric).transpose()?.into(),
            cache_write.map(to_numeric).transpose()?.into(),
            reasoning.map(to_numeric).transpose()?.into(),
        ],
    )?;
    id.ok_or_else(|| UsageError::Internal("insert returned no id".into()))
}

/// Adds a price version (service_role). A cache or reasoning price not given
/// is no price: those tokens are not charged at another bucket's rate but
/// listed by list_unknown_models. Returns the new price_id. Events already
/// logged keep their costs; use `reprice_ai_usage` to recompute them.
#[pg_extern(
    security_definer,
    volatile,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "set_model_price"
)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::too_many_arguments)]
fn set_model_price(
    p_provider: Option<String>,
    p_model: Option<String>,
    p_effective_from: Option<pgrx::datum::TimestampWithTimeZone>,
    p_input_usd_per_mtok: Option<AnyNumeric>,
    p_output_usd_per_mtok: Option<AnyNumeric>,
    p_cache_read_usd_per_mtok: Option<AnyNumeric>,
    p_cache_write_usd_per_mtok: Option<AnyNumeric>,
    p_reasoning_usd_per_mtok: Option<AnyNumeric>,
) -> PgResult<i32> {
    guarded(|| {
        set_model_price_impl(
            p_provider,
            p_model,
            p_effective_from,
            p_input_usd_per_mtok,
            p_output_usd_per_mtok,
            p_cache_read_usd_per_mtok,
            p_cache_write_usd_per_mtok,
            p_reasoning_usd_per_mtok,
        )
    })
}

type UnknownModelRow = (
    Option<String>,
    Option<String>,
    Option<i64>,
    Option<AnyNumeric>,
    Option<pgrx::datum::TimestampWithTimeZone>,
    Option<pgrx::datum::TimestampWithTimeZone>,
    Option<Vec<String>>,
);

fn unknown_models_impl(org: Option<Uuid>) -> Result<Vec<UnknownModelRow>> {
    let scope = org_read_scope(caller()?, org)?;
    crate::relcache::require_column("usage_tracker.ai_usage_log", "unpriced_buckets")?;
    // What is missing: the whole price ('price'), or the buckets the price
    // version used has no rate for (cache_read, cache_write, reasoning).
    let sql = format!(
        "WITH u AS (SELECT l.provider, l.model_used, l.total_tokens, l.created_at, \
                           CASE WHEN l.price_id IS NULL THEN '{{price}}'::text[] ELSE l.unpriced_buckets END AS missing \
                      FROM usage_tracker.ai_usage_log l \
                     WHERE (l.price_id IS NULL OR l.unpriced_buckets IS NOT NULL) AND {}) \
         SELECT u.provider, u.model_used, pg_catalog.count(*), pg_catalog.sum(u.total_tokens), \
                pg_catalog.min(u.created_at), pg_catalog.max(u.created_at), \
                (SELECT pg_catalog.array_agg(DISTINCT b ORDER BY b) FROM u u2, pg_catalog.unnest(u2.missing) b \
                  WHERE u2.provider IS NOT DISTINCT FROM u.provider AND u2.model_used = u.model_used) \
           FROM u GROUP BY u.provider, u.model_used ORDER BY 3 DESC, 2, 1",
        scope.predicate("l", 1, 2)
    );
    let (orgs, user) = scope.args();
    Spi::connect(|c| {
        let t = c.select(&sql, None, &[orgs.into(), user.into()])?;
        let mut out = Vec::new();
        for row in t {
            out.push((
                row.get::<String>(1)?,
                row.get::<String>(2)?,
                row.get::<i64>(3)?,
                row.get::<AnyNumeric>(4)?,
                row.get(5)?,
                row.get(6)?,
                row.get::<Vec<String>>(7)?,
            ));
        }
        Ok(out)
    })
}

/// Models logged without a price, or with tokens in a bucket their price
/// has no rate for (those cost nothing), with how often, when, and what is
/// missing: add the prices with set_model_price, then reprice.
#[pg_extern(
    security_definer,
    stable,
    parallel_unsafe,
    schema = "usage_tracker_private",
    name = "list_unknown_models"
)]
#[search_path(pg_catalog, pg_temp)]
#[allow(clippy::type_complexity)] // pgrx reads the column names from the literal tuple
fn list_unknown_models(
    p_org_id: Option<Uuid>,
) -> std::result::Result<
    TableIterator<
        'static,
        (
            name!(provider, Option<String>),
            name!(model_used, Option<String>),
            name!(requests, Option<i64>),
            name!(total_tokens, Option<AnyNumeric>),
            name!(first_seen, Option<pgrx::datum::TimestampWithTimeZone>),
            name!(last_seen, Option<pgrx::datum::TimestampWithTimeZone>),
            name!(missing, Option<Vec<String>>),
        ),
    >,
    ErrorReport,
> {
    guarded(|| unknown_models_impl(p_org_id)).map(TableIterator::new)
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::*;
    use crate::limits::MAX_TOKENS;
    use crate::spi_util::read_one;

    fn current_price_id(model: &str) -> Result<Option<i32>> {
        read_one(
            "SELECT p.price_id FROM usage_tracker.model_prices p WHERE p.model = $1 \
             ORDER BY p.effective_from DESC, p.price_id DESC LIMIT 1",
            &[model.into()],
        )
    }

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn rates(i: &str, o: &str, cr: &str, cw: &str, r: &str) -> Rates {
        Rates {
            input: d(i),
            output: d(o),
            cache_read: Some(d(cr)),
            cache_write: Some(d(cw)),
            reasoning: Some(d(r)),
        }
    }

    fn toks(i: i64, o: i64, cr: i64, cw: i64, r: i64) -> Tokens {
        Tokens {
            input: i,
            output: o,
            cache_read: cr,
            cache_write: cw,
            reasoning: r,
        }
    }

    macro_rules! cost_cases {
        ($($name:ident: $tokens:expr, $rates:expr, $cached:expr => $total:expr, $potential:expr;)*) => {
            $(
                #[pg_test]
                fn $name() {
                    let c = compute_costs(&$tokens, Some(&$rates), $cached).unwrap();
                    assert_eq!(c.total, d($total), "total");
                    assert_eq!(c.potential, d($potential), "potential");
                    assert_eq!(
                        c.input + c.output + c.cache_read + c.cache_write + c.reasoning,
                        c.total,
                        "parts add up to the total"
                    );
                }
            )*
        };
    }

    cost_cases! {
        sonnet_seed_prices: toks(1000, 500, 0, 0, 0), rates("3", "15", "0.3", "3.75", "15"), false
            => "0.0105", "0.0105";
        one_token_of_the_cheapest_model_is_not_zero: toks(1, 0, 0, 0, 0), rates("0.075", "0.3", "0", "0", "0"), false
            => "0.000000075", "0.000000075";
        nine_decimal_rate_one_token: toks(1, 0, 0, 0, 0), rates("0.000000001", "0", "0", "0", "0"), false
            => "0.000000000000001", "0.000000000000001";
        cache_and_reasoning_tokens: toks(100, 200, 10_000, 2_000, 300), rates("3", "15", "0.3", "3.75", "15"), false
            => "0.0183", "0.0183";
        cached_response_costs_nothing: toks(1000, 500, 0, 0, 0), rates("3", "15", "0.3", "3.75", "15"), true
            => "0", "0.0105";
        gpt_4o_mini: toks(1_000_000, 1_000_000, 0, 0, 0), rates("0.15", "0.6", "0.075", "0.15", "0.6"), false
            => "0.75", "0.75";
        max_tokens_max_rate_fits: toks(MAX_TOKENS, MAX_TOKENS, MAX_TOKENS, MAX_TOKENS, MAX_TOKENS),
            rates("100000", "100000", "100000", "100000", "99999.999999999"), false
            => "499999999999.999", "499999999999.999";
        zero_tokens: toks(0, 0, 0, 0, 0), rates("3", "15", "0.3", "3.75", "15"), false => "0", "0";
    }

    #[pg_test]
    fn a_bucket_without_a_rate_is_unpriced_not_charged_at_another_rate() {
        let r = Rates {
            input: d("3"),
            output: d("15"),
            cache_read: None,
            cache_write: Some(d("3.75")),
            reasoning: None,
        };
        let c = compute_costs(&toks(1000, 100, 10_000, 1000, 50), Some(&r), false).unwrap();
        assert_eq!(c.cache_read, Decimal::ZERO);
        assert_eq!(c.reasoning, Decimal::ZERO);
        assert_eq!(
            c.total,
            d("0.00825"),
            "input 0.003 + output 0.0015 + writes 0.00375"
        );
        assert_eq!(c.unpriced, vec!["cache_read", "reasoning"]);
        let none = compute_costs(&toks(1000, 100, 0, 0, 0), Some(&r), false).unwrap();
        assert!(
            none.unpriced.is_empty(),
            "no tokens in the unpriced buckets"
        );
    }

    #[pg_test]
    fn unknown_model_costs_nothing() {
        let c = compute_costs(&toks(10, 10, 0, 0, 0), None, false).unwrap();
        assert_eq!(c, Costs::default());
    }

    #[pg_test]
    fn beyond_the_seed_numeric_10_6() {
        // NUMERIC(10,6) rounds this to zero and overflows at $10,000.
        let c = compute_costs(
            &toks(1, 0, 0, 0, 0),
            Some(&rates("0.15", "0", "0", "0", "0")),
            false,
        )
        .unwrap();
        assert_eq!(c.total, d("0.00000015"));
        let big = compute_costs(
            &toks(0, 1_000_000_000, 0, 0, 0),
            Some(&rates("0", "15", "0", "0", "0")),
            false,
        )
        .unwrap();
        assert_eq!(big.total, d("15000"));
    }

    #[pg_test]
    fn shipped_prices_are_in_the_catalog() {
        assert_eq!(
            current_price_id("claude-sonnet-4-20250514").unwrap(),
            Some(1)
        );
        assert_eq!(current_price_id("gpt-4o-mini").unwrap(), Some(3));
        assert_eq!(current_price_id("gpt-4o").unwrap(), Some(4));
    }

    #[pg_test]
    fn rate_validation() {
        assert!(rate_arg("x", Some(AnyNumeric::try_from("-1").unwrap())).is_err());
        assert!(rate_arg("x", Some(AnyNumeric::try_from("100001").unwrap())).is_err());
        assert!(rate_arg("x", Some(AnyNumeric::try_from("NaN").unwrap())).is_err());
        assert!(rate_arg("x", Some(AnyNumeric::try_from("0.0000000001").unwrap())).is_err());
        assert_eq!(
            rate_arg("x", Some(AnyNumeric::try_from("3.750").unwrap())).unwrap(),
            Some(d("3.75"))
        );
    }
}
