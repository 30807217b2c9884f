//! What the recorders saw of a time range, from a store's rows of runs and gaps: the rules
//! are the same whichever store holds the rows, so every store answers "were we watching"
//! alike.

use super::Coverage;
use crate::model::Micros;

/// A run that touched the range, its status as readers take it (a `running` run whose
/// writer is gone is `abnormal`).
#[derive(Debug, Clone)]
pub struct RunRow {
    pub kind: String,
    pub source: String,
    pub first: Micros,
    pub last: Micros,
    pub status: String,
}

/// A stored gap: (start, end, kind, count, detail).
pub type GapRow = (Micros, Micros, String, i64, String);

/// A recorder run that ended abnormally at or before the range's end: from its last commit
/// to the first packet of its recorder's next run (if any), nothing watched.
#[derive(Debug, Clone)]
pub struct DiedRun {
    pub source: String,
    pub last: Micros,
    pub next: Option<Micros>,
}

/// Whether an import's range is vouched for: only once it ended and everything it decoded
/// is stored. A running, failed or killed import holds lifetimes in memory (until their
/// time bucket is complete) that the store does not have yet, or never will.
pub fn import_unfinished(kind: &str, status: &str) -> bool {
    kind == "import" && matches!(status, "running" | "abnormal")
}

/// The coverage of `[t0, t1]` from the runs touching it (by first packet), the stored gaps
/// touching it (by start), and the recorder runs that died.
pub fn assemble(
    t0: Micros,
    t1: Micros,
    runs: Vec<RunRow>,
    gaps: Vec<GapRow>,
    died: Vec<DiedRun>,
) -> Coverage {
    let mut c = Coverage::default();
    let mut unfinished = Vec::new();
    for r in runs {
        if import_unfinished(&r.kind, &r.status) {
            // Not watched time: reported as a gap, and left out of what covers the range.
            let why = if r.status == "running" {
                "is still running"
            } else {
                "stopped before it ended (killed, or a write failed)"
            };
            unfinished.push((
                r.first,
                r.last,
                "import-unfinished".to_string(),
                1,
                format!(
                    "the import of {} {why}: its lifetimes are not all stored; import it again",
                    r.source
                ),
            ));
            continue;
        }
        c.runs.push((r.kind, r.source, r.first, r.last));
    }
    // Walk the covered intervals in start order and note the holes in [t0, t1].
    let mut cursor = t0;
    for (_, _, a, b) in &c.runs {
        if *a > cursor {
            c.uncovered.push((cursor, (*a - 1).min(t1)));
        }
        cursor = cursor.max(b.saturating_add(1));
        if cursor > t1 {
            break;
        }
    }
    if cursor <= t1 {
        c.uncovered.push((cursor, t1));
    }
    c.gaps = gaps;
    c.gaps.extend(unfinished);
    for d in died {
        let to = d
            .next
            .map_or(t1.max(d.last), |n| n.saturating_sub(1).max(d.last));
        if to < t0 {
            continue;
        }
        c.gaps.push((
            d.last,
            to,
            "abnormal-end".to_string(),
            1,
            format!(
                "the recorder on {} ended abnormally (killed, crashed or power lost) after its last commit at {}; nothing was watched until {}",
                d.source,
                crate::time::format_rfc3339(d.last),
                d.next.map_or("the next run".to_string(), crate::time::format_rfc3339)
            ),
        ));
    }
    c.gaps.sort_by_key(|g| g.0);
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(kind: &str, status: &str, first: Micros, last: Micros) -> RunRow {
        RunRow {
            kind: kind.into(),
            source: "x".into(),
            first,
            last,
            status: status.into(),
        }
    }

    #[test]
    fn holes_between_runs_are_uncovered_and_unfinished_imports_are_gaps() {
        let c = assemble(
            0,
            100,
            vec![
                run("import", "ok", 10, 20),
                run("import", "abnormal", 30, 40),
                run("record", "stopped", 50, 200),
            ],
            vec![],
            vec![DiedRun {
                source: "em0".into(),
                last: 45,
                next: Some(50),
            }],
        );
        assert_eq!(c.uncovered, vec![(0, 9), (21, 49)]);
        let kinds: Vec<_> = c.gaps.iter().map(|g| (g.0, g.1, g.2.as_str())).collect();
        assert_eq!(
            kinds,
            vec![(30, 40, "import-unfinished"), (45, 49, "abnormal-end")]
        );
    }
}
