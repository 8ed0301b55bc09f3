//! Native histograms read the way the reference reads them for its JSON
//! API and its web page.
//!
//! The Go gateway turns a pushed `dto.Histogram` into a Prometheus
//! `model/histogram` value (`histogram.NewModelHistogram` in its
//! `histogram/prometheus_model.go`) and walks that value's bucket
//! iterators. The bucket bounds, their inclusiveness, which buckets are left
//! out and the order all come from there, so this module follows the same
//! code: `getBound` and `baseBucketIterator.at` (`generic.go`),
//! `regularBucketIterator.Next` (`histogram.go`), the float iterator's fast
//! path (`float_histogram.go`) and `Histogram.String` /
//! `FloatHistogram.String` for the page.

use crate::model::{Histogram, NativeHistogram, Span};
use crate::wire::exposition::write_float;

/// `histogram.CustomBucketsSchema`: bounds come from a list a pushed
/// `dto.Histogram` cannot carry, so only the `±Inf` ends are known.
const CUSTOM_BUCKETS_SCHEMA: i32 = -53;

/// The bucket counts of an integer histogram (`uint64` in Go) or of a float
/// histogram (`float64`): they are printed differently.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Count {
    Int(u64),
    Float(f64),
}

impl Count {
    /// Go's `%v` of the count (`%d` for integers, `%g` for floats).
    pub(crate) fn go(self) -> String {
        match self {
            Count::Int(n) => n.to_string(),
            Count::Float(f) => go_float(f),
        }
    }

    /// `Count != 0` as Go compares it (a NaN float count is not zero).
    fn is_zero(self) -> bool {
        match self {
            Count::Int(n) => n == 0,
            Count::Float(f) => f == 0.0,
        }
    }
}

/// A float as Go's `%g` / `%v` writes it (`-0` keeps its sign there).
pub(crate) fn go_float(f: f64) -> String {
    if f == 0.0 && f.is_sign_negative() {
        return "-0".into();
    }
    let mut v = Vec::new();
    write_float(&mut v, f);
    String::from_utf8_lossy(&v).into_owned()
}

/// One bucket as `model/histogram.Bucket` has it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Bucket {
    pub lower: f64,
    pub upper: f64,
    pub lower_inclusive: bool,
    pub upper_inclusive: bool,
    pub count: Count,
}

impl Bucket {
    /// The API's interval code (`makeBucket` in the reference's
    /// `prometheus_model.go`): 0 `(]`, 1 `[)`, 2 `()`, 3 `[]`.
    pub(crate) fn boundaries(&self) -> u8 {
        match (self.lower_inclusive, self.upper_inclusive) {
            (true, true) => 3,
            (true, false) => 1,
            (false, true) => 0,
            (false, false) => 2,
        }
    }

    /// `Bucket.String`: `(0.5,1]:3`.
    fn go_string(&self) -> String {
        format!(
            "{}{},{}{}:{}",
            if self.lower_inclusive { '[' } else { '(' },
            go_float(self.lower),
            go_float(self.upper),
            if self.upper_inclusive { ']' } else { ')' },
            self.count.go()
        )
    }
}

/// A pushed histogram seen as a native one: what `NewModelHistogram`
/// makes of it.
pub(crate) struct Native<'a> {
    /// The histogram's count (`Count`): the float count of a float histogram.
    pub count: Count,
    sum: f64,
    zero_count: Count,
    n: &'a NativeHistogram,
}

/// The native view of `h`, if the reference would take one: only when the
/// histogram has spans (`makeEncodableMetrics` in `api/v1/api.go`, and the
/// template's `$numNBuckets`). A float histogram is one with a positive float
/// count or float zero count (`NewModelHistogram`).
pub(crate) fn native(h: &Histogram) -> Option<Native<'_>> {
    let n = h.native.as_deref()?;
    if n.positive_spans.is_empty() && n.negative_spans.is_empty() {
        return None;
    }
    let count_float = h.count_float.unwrap_or(0.0);
    let zero_float = n.zero_count_float.unwrap_or(0.0);
    let float = count_float > 0.0 || zero_float > 0.0;
    Some(Native {
        count: if float {
            Count::Float(count_float)
        } else {
            Count::Int(h.count)
        },
        sum: h.sum,
        zero_count: if float {
            Count::Float(zero_float)
        } else {
            Count::Int(n.zero_count)
        },
        n,
    })
}

impl Native<'_> {
    fn is_float(&self) -> bool {
        matches!(self.count, Count::Float(_))
    }

    /// The buckets with a non-zero count, from the most negative through
    /// the zero bucket to the largest (`GetAPIBuckets` /
    /// `GetAPIFloatBuckets`, the same walk as `Histogram.String`).
    pub(crate) fn buckets(&self) -> Vec<Bucket> {
        let mut out = self.side(false);
        out.reverse();
        if !self.zero_count.is_zero() {
            // `ZeroBucket()`: closed on both ends.
            out.push(Bucket {
                lower: -self.n.zero_threshold,
                upper: self.n.zero_threshold,
                lower_inclusive: true,
                upper_inclusive: true,
                count: self.zero_count,
            });
        }
        out.extend(self.side(true));
        out
    }

    /// One side's non-empty buckets in the iterator's order (away from
    /// zero). Integer histograms carry deltas, float ones absolute counts.
    fn side(&self, positive: bool) -> Vec<Bucket> {
        let (spans, deltas, counts) = if positive {
            (
                &self.n.positive_spans,
                &self.n.positive_deltas,
                &self.n.positive_counts,
            )
        } else {
            (
                &self.n.negative_spans,
                &self.n.negative_deltas,
                &self.n.negative_counts,
            )
        };
        let float = self.is_float();
        let len = if float { counts.len() } else { deltas.len() };
        let mut walk = SpanWalk::new(spans, len);
        let mut running: i64 = 0;
        let mut out = Vec::new();
        while let Some((idx, pos)) = walk.next() {
            let count = if float {
                Count::Float(counts[pos])
            } else {
                // Go adds int64 deltas (wrapping) and converts to uint64.
                running = running.wrapping_add(deltas[pos]);
                Count::Int(running as u64)
            };
            let b = bucket_at(idx, self.n.schema, positive, count);
            if !b.count.is_zero() {
                out.push(b);
            }
        }
        out
    }

    /// `Histogram.String` / `FloatHistogram.String`, what the reference's
    /// page shows as "Native Histogram representation":
    /// `{count:5, sum:7.5, [-4,-2):1, [-0.001,0.001]:1, (2,4]:3}`.
    pub(crate) fn go_string(&self) -> String {
        let mut s = format!("{{count:{}, sum:{}", self.count.go(), go_float(self.sum));
        for b in self.buckets() {
            s.push_str(", ");
            s.push_str(&b.go_string());
        }
        s.push('}');
        s
    }
}

/// Walks spans as `regularBucketIterator.Next` does: yields each bucket's
/// index within the schema and its position in the bucket list. Where Go
/// would index past the list (fewer buckets than the spans promise) and
/// panic, the walk ends.
struct SpanWalk<'a> {
    spans: &'a [Span],
    buckets: usize,
    spans_idx: usize,
    idx_in_span: u32,
    buckets_idx: usize,
    curr_idx: i32,
}

impl<'a> SpanWalk<'a> {
    fn new(spans: &'a [Span], buckets: usize) -> SpanWalk<'a> {
        SpanWalk {
            spans,
            buckets,
            spans_idx: 0,
            idx_in_span: 0,
            buckets_idx: 0,
            curr_idx: 0,
        }
    }

    fn next(&mut self) -> Option<(i32, usize)> {
        let mut span = *self.spans.get(self.spans_idx)?;
        // Seeded from the first span's offset until a bucket is taken.
        if self.buckets_idx == 0 {
            self.curr_idx = span.offset;
        } else {
            self.curr_idx = self.curr_idx.wrapping_add(1);
        }
        // Spans of length 0 are skipped, their offsets still count.
        while self.idx_in_span >= span.length {
            self.idx_in_span = 0;
            self.spans_idx += 1;
            span = *self.spans.get(self.spans_idx)?;
            self.curr_idx = self.curr_idx.wrapping_add(span.offset);
        }
        if self.buckets_idx >= self.buckets {
            return None;
        }
        let pos = self.buckets_idx;
        self.idx_in_span += 1;
        self.buckets_idx += 1;
        Some((self.curr_idx, pos))
    }
}

/// `baseBucketIterator.at`: the bounds of bucket `idx` on one side.
fn bucket_at(idx: i32, schema: i32, positive: bool, count: Count) -> Bucket {
    let (lower, upper) = if positive {
        (bound(idx.wrapping_sub(1), schema), bound(idx, schema))
    } else {
        (-bound(idx, schema), -bound(idx.wrapping_sub(1), schema))
    };
    let (lower_inclusive, upper_inclusive) = if schema == CUSTOM_BUCKETS_SCHEMA {
        (idx == 0, true)
    } else {
        (lower < 0.0, upper > 0.0)
    };
    Bucket {
        lower,
        upper,
        lower_inclusive,
        upper_inclusive,
        count,
    }
}

/// `getBound` / `getBoundExponential`: the upper bound of bucket `idx`.
/// Schemas the reference cannot handle (it panics: custom buckets beyond
/// the `±Inf` ends, schemas above 8) give NaN here.
fn bound(idx: i32, schema: i32) -> f64 {
    if schema == CUSTOM_BUCKETS_SCHEMA {
        return match idx {
            0 => f64::INFINITY,
            -1 => f64::NEG_INFINITY,
            _ => f64::NAN,
        };
    }
    if schema < 0 {
        // `int(idx) << -schema`, a 64-bit shift that drops what overflows.
        let exp = (idx as i64).checked_shl(schema.unsigned_abs()).unwrap_or(0);
        if exp == 1024 {
            // The last bucket before the one for ±Inf observations.
            return f64::MAX;
        }
        return ldexp(1.0, exp);
    }
    if schema > 8 {
        return f64::NAN;
    }
    // Schema s's table is every 2^(8-s)th entry of schema 8's.
    let frac_idx = (idx & ((1 << schema) - 1)) as usize;
    let frac = EXPONENTIAL_BOUNDS_8[frac_idx << (8 - schema)];
    let exp = ((idx as i64) >> schema) + 1;
    if frac == 0.5 && exp == 1025 {
        return f64::MAX;
    }
    ldexp(frac, exp)
}

/// Go's `math.Ldexp` for a normal `frac`: `frac × 2^exp`, to ±Inf or 0
/// beyond the range of f64.
fn ldexp(frac: f64, exp: i64) -> f64 {
    let pow2 = |e: i32| f64::from_bits(((e + 1023) as u64) << 52);
    let mut x = frac;
    let mut e = exp.clamp(-2200, 2200) as i32;
    while e > 1000 {
        x *= pow2(1000);
        e -= 1000;
    }
    while e < -1000 {
        x *= pow2(-1000);
        e += 1000;
    }
    x * pow2(e)
}

/// `exponentialBounds[8]` from Prometheus' `model/histogram/generic.go`,
/// copied digit for digit: the reference's bounds are these values (not
/// always the correctly rounded 2^(i/256)/2), so computing them would
/// differ in the last digit.
#[allow(clippy::approx_constant, clippy::unreadable_literal)]
const EXPONENTIAL_BOUNDS_8: [f64; 256] = [
    0.5,
    0.5013556375251013,
    0.5027149505564014,
    0.5040779490592088,
    0.5054446430258502,
    0.5068150424757447,
    0.5081891574554764,
    0.509566998038869,
    0.5109485743270583,
    0.5123338964485679,
    0.5137229745593818,
    0.5151158188430205,
    0.5165124395106142,
    0.5179128468009786,
    0.5193170509806894,
    0.520725062344158,
    0.5221368912137069,
    0.5235525479396449,
    0.5249720429003435,
    0.526395386502313,
    0.5278225891802786,
    0.5292536613972564,
    0.5306886136446309,
    0.5321274564422321,
    0.5335702003384117,
    0.5350168559101208,
    0.5364674337629877,
    0.5379219445313954,
    0.5393803988785598,
    0.5408428074966075,
    0.5423091811066545,
    0.5437795304588847,
    0.5452538663326288,
    0.5467321995364429,
    0.5482145409081883,
    0.549700901315111,
    0.5511912916539204,
    0.5526857228508706,
    0.5541842058618393,
    0.5556867516724088,
    0.5571933712979462,
    0.5587040757836845,
    0.5602188762048033,
    0.5617377836665098,
    0.5632608093041209,
    0.564787964283144,
    0.5663192597993595,
    0.5678547070789026,
    0.5693943173783458,
    0.5709381019847808,
    0.572486072215902,
    0.5740382394200894,
    0.5755946149764913,
    0.5771552102951081,
    0.5787200368168754,
    0.5802891060137493,
    0.5818624293887887,
    0.5834400184762408,
    0.585021884841625,
    0.5866080400818185,
    0.5881984958251406,
    0.5897932637314379,
    0.5913923554921704,
    0.5929957828304968,
    0.5946035575013605,
    0.5962156912915756,
    0.5978321960199137,
    0.5994530835371903,
    0.6010783657263515,
    0.6027080545025619,
    0.6043421618132907,
    0.6059806996384005,
    0.6076236799902344,
    0.6092711149137041,
    0.6109230164863786,
    0.6125793968185725,
    0.6142402680534349,
    0.6159056423670379,
    0.6175755319684665,
    0.6192499490999082,
    0.620928906036742,
    0.622612415087629,
    0.6243004885946023,
    0.6259931389331581,
    0.6276903785123455,
    0.6293922197748583,
    0.6310986751971253,
    0.6328097572894031,
    0.6345254785958666,
    0.6362458516947014,
    0.637970889198196,
    0.6397006037528346,
    0.6414350080393891,
    0.6431741147730128,
    0.6449179367033329,
    0.6466664866145447,
    0.6484197773255048,
    0.6501778216898253,
    0.6519406325959679,
    0.6537082229673385,
    0.6554806057623822,
    0.6572577939746774,
    0.659039800633032,
    0.6608266388015788,
    0.6626183215798706,
    0.6644148621029772,
    0.6662162735415805,
    0.6680225691020727,
    0.6698337620266515,
    0.6716498655934177,
    0.6734708931164728,
    0.6752968579460171,
    0.6771277734684463,
    0.6789636531064505,
    0.6808045103191123,
    0.6826503586020058,
    0.6845012114872953,
    0.6863570825438342,
    0.688217985377265,
    0.690083933630119,
    0.6919549409819159,
    0.6938310211492645,
    0.6957121878859629,
    0.6975984549830999,
    0.6994898362691555,
    0.7013863456101023,
    0.7032879969095076,
    0.7051948041086352,
    0.7071067811865475,
    0.7090239421602076,
    0.7109463010845827,
    0.7128738720527471,
    0.7148066691959849,
    0.7167447066838943,
    0.718687998724491,
    0.7206365595643126,
    0.7225904034885232,
    0.7245495448210174,
    0.7265139979245261,
    0.7284837772007218,
    0.7304588970903234,
    0.7324393720732029,
    0.7344252166684908,
    0.7364164454346837,
    0.7384130729697496,
    0.7404151139112358,
    0.7424225829363761,
    0.7444354947621984,
    0.7464538641456323,
    0.7484777058836176,
    0.7505070348132126,
    0.7525418658117031,
    0.7545822137967112,
    0.7566280937263048,
    0.7586795205991071,
    0.7607365094544071,
    0.762799075372269,
    0.7648672334736434,
    0.7669409989204777,
    0.7690203869158282,
    0.7711054127039704,
    0.7731960915705107,
    0.7752924388424999,
    0.7773944698885442,
    0.7795022001189185,
    0.7816156449856788,
    0.7837348199827764,
    0.7858597406461707,
    0.7879904225539431,
    0.7901268813264122,
    0.7922691326262467,
    0.7944171921585818,
    0.7965710756711334,
    0.7987307989543135,
    0.8008963778413465,
    0.8030678282083853,
    0.805245165974627,
    0.8074284071024302,
    0.8096175675974316,
    0.8118126635086642,
    0.8140137109286738,
    0.8162207259936375,
    0.8184337248834821,
    0.820652723822003,
    0.8228777390769823,
    0.8251087869603088,
    0.8273458838280969,
    0.8295890460808079,
    0.8318382901633681,
    0.8340936325652911,
    0.8363550898207981,
    0.8386226785089391,
    0.8408964152537144,
    0.8431763167241966,
    0.8454623996346523,
    0.8477546807446661,
    0.8500531768592616,
    0.8523579048290255,
    0.8546688815502312,
    0.8569861239649629,
    0.8593096490612387,
    0.8616394738731368,
    0.8639756154809185,
    0.8663180910111553,
    0.8686669176368529,
    0.871022112577578,
    0.8733836930995842,
    0.8757516765159389,
    0.8781260801866495,
    0.8805069215187917,
    0.8828942179666361,
    0.8852879870317771,
    0.8876882462632604,
    0.890095013257712,
    0.8925083056594671,
    0.8949281411607002,
    0.8973545375015533,
    0.8997875124702672,
    0.9022270839033115,
    0.9046732696855155,
    0.9071260877501991,
    0.909585556079304,
    0.9120516927035263,
    0.9145245157024483,
    0.9170040432046711,
    0.9194902933879467,
    0.9219832844793128,
    0.9244830347552253,
    0.9269895625416926,
    0.92950288621441,
    0.9320230241988943,
    0.9345499949706191,
    0.9370838170551498,
    0.93962450902828,
    0.9421720895161669,
    0.9447265771954693,
    0.9472879907934827,
    0.9498563490882775,
    0.9524316709088368,
    0.9550139751351947,
    0.9576032806985735,
    0.9601996065815236,
    0.9628029718180622,
    0.9654133954938133,
    0.9680308967461471,
    0.9706554947643201,
    0.9732872087896164,
    0.9759260581154889,
    0.9785720620876999,
    0.9812252401044634,
    0.9838856116165875,
    0.9865531961276168,
    0.9892280131939752,
    0.9919100824251095,
    0.9945994234836328,
    0.9972960560854698,
];

#[cfg(test)]
mod tests {
    use super::*;

    fn span(offset: i32, length: u32) -> Span {
        Span { offset, length }
    }

    #[test]
    // Go's bounds, one ulp off `SQRT_2` and `FRAC_1_SQRT_2` on purpose.
    #[allow(clippy::approx_constant)]
    fn bounds_follow_get_bound() {
        // getBoundExponential: schema 0 doubles, schema 1 halves the steps,
        // schema -1 squares, the last regular bucket ends at MaxFloat64.
        assert_eq!(bound(0, 0), 1.0);
        assert_eq!(bound(1, 0), 2.0);
        assert_eq!(bound(-1, 0), 0.5);
        assert_eq!(bound(1, 1), 1.414213562373095);
        assert_eq!(bound(1, 2), 1.189207115002721);
        assert_eq!(bound(2, -1), 16.0);
        assert_eq!(bound(1024, 0), f64::MAX);
        assert_eq!(bound(1025, 0), f64::INFINITY);
        assert_eq!(bound(256, -2), f64::MAX);
        assert_eq!(bound(-1100, 0), 0.0);
        // Table entries the correctly rounded value would miss by an ulp.
        assert_eq!(bound(-1, 1), 0.7071067811865475);
        assert_eq!(bound(6 - 256, 8), 0.5081891574554764);
        // Lower schemas read schema 8's table: these are entries of Go's own
        // schema 2, 3 and 4 rows (exponentialBounds[2][1], [3][5], [4][11]).
        assert_eq!(bound(-3, 2), 0.5946035575013605);
        assert_eq!(bound(5, 3), 2.0 * 0.7711054127039704);
        assert_eq!(bound(11, 4), 2.0 * 0.805245165974627);
        assert!(bound(0, 9).is_nan());
        assert_eq!(bound(0, CUSTOM_BUCKETS_SCHEMA), f64::INFINITY);
    }

    #[test]
    fn walk_skips_empty_spans_and_stops_short() {
        let spans = [span(-2, 0), span(3, 2), span(2, 1)];
        let mut w = SpanWalk::new(&spans, 3);
        assert_eq!(w.next(), Some((1, 0)));
        assert_eq!(w.next(), Some((2, 1)));
        assert_eq!(w.next(), Some((5, 2)));
        assert_eq!(w.next(), None);
        // Fewer buckets than spans promise: Go panics, we stop.
        let mut w = SpanWalk::new(&spans, 1);
        assert_eq!(w.next(), Some((1, 0)));
        assert_eq!(w.next(), None);
    }

    fn integer() -> Histogram {
        Histogram {
            count: 6,
            sum: -3.5,
            native: Some(Box::new(NativeHistogram {
                schema: 0,
                zero_threshold: 0.001,
                zero_count: 1,
                negative_spans: vec![span(1, 2)],
                negative_deltas: vec![1, -1],
                positive_spans: vec![span(0, 1), span(1, 2)],
                positive_deltas: vec![2, -2, 2],
                ..NativeHistogram::default()
            })),
            ..Histogram::default()
        }
    }

    #[test]
    fn integer_histogram_string() {
        // Histogram.String: negative buckets reversed, [) below zero, the
        // closed zero bucket, (] above; empty buckets left out.
        let h = integer();
        assert_eq!(
            native(&h).unwrap().go_string(),
            "{count:6, sum:-3.5, [-2,-1):1, [-0.001,0.001]:1, (0.5,1]:2, (4,8]:2}"
        );
    }

    #[test]
    fn float_histogram_string() {
        // NewModelHistogram: a float count makes it a FloatHistogram, whose
        // buckets are absolute counts printed with %g.
        let mut h = integer();
        h.count_float = Some(4.5);
        let n = h.native.as_mut().unwrap();
        n.zero_count_float = Some(0.0);
        n.negative_spans.clear();
        n.positive_counts = vec![1.5, 0.0, 3e-7];
        assert_eq!(
            native(&h).unwrap().go_string(),
            "{count:4.5, sum:-3.5, (0.5,1]:1.5, (4,8]:3e-07}"
        );
    }

    #[test]
    fn hostile_layouts_neither_panic_nor_loop() {
        // Where Go panics (index out of range, negative shift) or the
        // numbers leave f64, the walk ends or the bound saturates.
        let schemas = [i32::MIN, -53, -5, -4, 0, 8, 9, 52, i32::MAX];
        // A NaN float count is not > 0: an integer histogram (deltas).
        for (schema, count_float) in schemas.iter().flat_map(|s| [(*s, f64::NAN), (*s, 1.0)]) {
            let h = Histogram {
                count_float: Some(count_float),
                native: Some(Box::new(NativeHistogram {
                    schema,
                    zero_count_float: Some(f64::NAN),
                    negative_spans: vec![span(i32::MIN, u32::MAX), span(i32::MAX, 2)],
                    negative_counts: vec![1.0, f64::NAN, -1.0],
                    positive_spans: vec![span(i32::MAX, 3), span(-7, 0), span(i32::MIN, 1)],
                    positive_deltas: vec![i64::MAX, i64::MAX, i64::MIN, 5],
                    positive_counts: vec![f64::INFINITY; 5],
                    ..NativeHistogram::default()
                })),
                ..Histogram::default()
            };
            let n = native(&h).unwrap();
            assert!(n.buckets().len() <= 8);
            assert!(n.go_string().starts_with("{count:"));
        }
    }

    #[test]
    fn classic_histograms_are_not_native() {
        let mut h = integer();
        assert!(native(&h).is_some());
        let n = h.native.as_mut().unwrap();
        n.positive_spans.clear();
        n.negative_spans.clear();
        assert!(native(&h).is_none(), "no spans, no native view");
        assert!(native(&Histogram::default()).is_none());
    }
}
