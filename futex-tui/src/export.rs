//! What the dashboard writes to files (main carries these out for the app's actions).

use std::path::{Path, PathBuf};

use futex_trace::export::flame::{self, Side};
use futex_trace::export::Show;
use futex_trace::sites::Analysis;
use futex_trace::stacks::Names;

use crate::app::App;

/// Writes a flamegraph (SVG) of the model as shown now into `dir`: by waiting stack when the source has
/// stacks, else by lock (process → kind → lock). Returns its path.
pub fn write_flamegraph(app: &App, dir: &Path) -> std::io::Result<PathBuf> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = dir.join(format!("futex-tui-waits-{secs}.svg"));
    // Without captured stacks (--no-stacks, a recording without them), by lock.
    let stacks = app.stacks.as_ref().filter(|_| !app.model.stacks.is_empty());
    let an = Analysis::new(&app.model, Names::new(&app.labels, stacks), &app.rules);
    let (lines, what) = flame::graph(&an, Side::Waiters, Show::Auto);
    let subtitle = format!(
        "{} · pid {} · {:.0} s · {} waits slept",
        app.source, app.pid, app.uptime_s, app.model.totals.waits_blocked
    );
    let file = std::fs::File::create(&path)?;
    let mut out = std::io::BufWriter::new(file);
    flame::svg(&lines, &what, &subtitle, &mut out)?;
    std::io::Write::flush(&mut out)?;
    Ok(path)
}
