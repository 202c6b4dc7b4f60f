//! `archivist serve`: the web archive, the subscription pages, and the weekly digest schedule
//! on a thread of its own.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;

use crate::config::Config;
use crate::digest::service::{build_options, now, Service};
use crate::store::Store;
use crate::web::{self, Digests};

/// How often the schedule looks for a due week (it also looks once at start-up).
const SCHEDULE_POLL: Duration = Duration::from_secs(60);

/// Serves on `bind` until the process is stopped.
pub fn run(config: &Config, bind: &str) -> Result<()> {
    let service = match Service::new(config) {
        Ok(s) => {
            let s = Arc::new(s);
            spawn_schedule(config.data_dir.clone(), Arc::clone(&s))?;
            Ok(s)
        }
        Err(e) => {
            eprintln!("archivist: digest subscriptions and the weekly schedule are off: {e:#}");
            Err(format!("{e:#}"))
        }
    };
    let digests = Digests::new(
        config.data_dir.clone(),
        service,
        &config.digest.base_url,
        build_options(config),
    )?;
    web::serve(&config.data_dir, bind, &config.server, digests)
}

/// Sends each week's digest when it falls due: at start-up (a week missed during downtime is
/// sent once) and then every [`SCHEDULE_POLL`]. The ledger makes a due week that another
/// process already sent a no-op, and the sender lock keeps two runs apart.
fn spawn_schedule(data_dir: PathBuf, service: Arc<Service>) -> Result<()> {
    std::thread::Builder::new()
        .name("archivist-digest-schedule".into())
        .spawn(move || loop {
            if let Err(e) = tick(&data_dir, &service) {
                eprintln!("archivist serve: digest schedule: {e:#}");
            }
            std::thread::sleep(SCHEDULE_POLL);
        })?;
    Ok(())
}

fn tick(data_dir: &std::path::Path, service: &Service) -> Result<()> {
    let path = data_dir.join("archive.sqlite3");
    if !path.exists() {
        return Ok(());
    }
    let mut store = Store::open(&path)?;
    let Some(week) = service.due_week(&store, now())? else {
        return Ok(());
    };
    let report = service.send_week(&mut store, week)?;
    eprintln!(
        "archivist serve: digest {}: sent {}, failed {}, deferred {}, skipped {}{}",
        report.week,
        report.sent,
        report.failed,
        report.deferred,
        report.skipped,
        if report.completed {
            ""
        } else {
            " (not completed: retried at the next check)"
        }
    );
    Ok(())
}
