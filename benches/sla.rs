//! SLA evaluation at scale: breach + at-risk state of 1,000,000 incidents at one
//! instant, and the next escalation step of the same set.
//!
//! Run with: cargo bench --bench sla
//!
//! Besides criterion's report it prints ns/incident (best of several passes).

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use imas::escalation::EscalationPolicy;
use imas::model::{Priority, UserId};
use imas::sla::{SlaClock, SlaPolicy, evaluate_all};

const N: usize = 1_000_000;

/// The compact per-incident state the escalation step reads.
#[derive(Clone, Copy)]
struct EscalationState {
    anchor_ms: i64,
    level: u32,
    stopped: bool,
}

fn fixtures() -> (
    Vec<SlaClock>,
    Vec<EscalationState>,
    Vec<imas::model::Incident>,
    i64,
) {
    let policy = SlaPolicy::default();
    let t0 = 1_767_225_600_000i64; // 2026-01-01
    let mut clocks = Vec::with_capacity(N);
    let mut states = Vec::with_capacity(N);
    let mut incidents = Vec::with_capacity(N / 10);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for n in 0..N {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let created = t0 + (seed % (72 * 3_600_000)) as i64;
        let prio = Priority::ALL[(seed >> 40) as usize % 4];
        let target = policy.resolution_ms(prio);
        clocks.push(SlaClock {
            deadline_ms: created + target,
            at_risk_ms: created + policy.at_risk_offset_ms(target),
        });
        states.push(EscalationState {
            anchor_ms: created + target,
            level: (seed >> 50) as u32 % 3,
            stopped: seed & 7 == 0,
        });
        if n % 10 == 0 {
            let mut i = imas::model::Incident::open(
                "bench",
                UserId::new(),
                imas::model::from_millis(created),
            );
            policy.assign(&mut i, prio);
            incidents.push(i);
        }
    }
    (clocks, states, incidents, t0 + 48 * 3_600_000)
}

/// How many incidents are due for their next escalation level at `now`.
fn next_steps(policy: &EscalationPolicy, states: &[EscalationState], now: i64) -> usize {
    states
        .iter()
        .map(|s| (policy.next_due_ms(s.level, s.anchor_ms, s.stopped) <= now) as usize)
        .sum()
}

fn ns_per(n: usize, mut f: impl FnMut()) -> f64 {
    let mut best = Duration::MAX;
    for _ in 0..15 {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed());
    }
    best.as_nanos() as f64 / n as f64
}

fn bench(c: &mut Criterion) {
    let (clocks, states, incidents, now) = fixtures();
    let sla = SlaPolicy::default();
    let esc = EscalationPolicy::default();
    let mut g = c.benchmark_group("sla");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("breach+at-risk, 1M compact clocks", |b| {
        b.iter(|| evaluate_all(black_box(&clocks), black_box(now)))
    });
    g.bench_function("escalation next step, 1M", |b| {
        b.iter(|| next_steps(&esc, black_box(&states), black_box(now)))
    });
    g.throughput(Throughput::Elements(incidents.len() as u64));
    g.bench_function("breach+at-risk from full Incident structs, 100k", |b| {
        b.iter(|| {
            black_box(&incidents)
                .iter()
                .map(|i| SlaClock::of(i, &sla).evaluate(now) as usize)
                .sum::<usize>()
        })
    });
    g.finish();

    let counts = evaluate_all(&clocks, now);
    println!("\nstate at the instant: {counts:?}");
    println!(
        "breach+at-risk (compact clocks):      {:.2} ns/incident",
        ns_per(N, || {
            black_box(evaluate_all(black_box(&clocks), black_box(now)));
        })
    );
    println!(
        "escalation next step:                 {:.2} ns/incident",
        ns_per(N, || {
            black_box(next_steps(&esc, black_box(&states), black_box(now)));
        })
    );
    println!(
        "breach+at-risk (full Incident structs): {:.2} ns/incident",
        ns_per(incidents.len(), || {
            black_box(
                black_box(&incidents)
                    .iter()
                    .map(|i| SlaClock::of(i, &sla).evaluate(now) as usize)
                    .sum::<usize>(),
            );
        })
    );
}

criterion_group!(benches, bench);

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
}
