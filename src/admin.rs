//! Operator commands on the job store: `puhuri-gateway jobs list|show|retry|discard`.
//!
//! They open the configured store directly (see [`crate::queue::open_store`]). With Redis that
//! works next to running gateways; the embedded store is locked by the gateway that has it open,
//! and the commands then say so and point at the HTTP API instead.
//!
//! [`run`] returns the text to print, or the message to print as the error, so `main` only prints.

use std::fmt::Write as _;

use chrono::SecondsFormat;

use crate::config::{Config, StoreConfig};
use crate::queue::{
    JobFilter, JobId, JobRecord, JobState, JobStore, StoreError, embedded, operator,
};

/// The largest page `jobs list` asks for (the store caps pages at this size too).
pub const MAX_LIMIT: usize = 1000;
/// `last_error` is cut to this many characters in the `jobs list` table.
const ERROR_WIDTH: usize = 60;
/// Connections a one-shot command needs from Redis.
const POOL_SIZE: usize = 2;

/// Inspect and repair delivery jobs in the gateway's job store.
#[derive(Clone, Debug, PartialEq, Eq, clap::Subcommand)]
pub enum JobsCommand {
    /// List jobs, newest first.
    ///
    /// Prints a table (id, state, operation, site, attempts, updated_at, last_error) and, when
    /// there are more jobs, the cursor for the next page.
    List {
        /// Only jobs in this state: queued, running, retrying, succeeded, failed, dead, superseded
        /// or canceled.
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        state: Option<JobState>,
        /// Only jobs of this operation, e.g. `usage.report` or `order.approve`.
        #[arg(long, value_name = "OPERATION")]
        operation: Option<String>,
        /// Only jobs of this site (its id as in the configuration).
        #[arg(long, value_name = "SITE")]
        site: Option<String>,
        /// How many jobs to show (1 to 1000).
        #[arg(long, default_value_t = 50, value_name = "N", value_parser = parse_limit)]
        limit: usize,
        /// Continue after this job id: the `next cursor` a previous page printed.
        #[arg(long, value_name = "ID")]
        cursor: Option<JobId>,
        /// Print JSON (`{"jobs": [...], "next_cursor": ...}`) instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Print one job's whole record as JSON (payload, attempts, last error, result, ...).
    Show {
        /// The job id (as `jobs list` or the API returned it).
        id: JobId,
    },
    /// Queue a failed or dead job again, with its attempts reset.
    ///
    /// The job goes to the back of its object's line, so later jobs of the same resource or order
    /// that are already waiting are delivered first.
    Retry {
        /// The job id.
        id: JobId,
    },
    /// Cancel a job that has not been delivered yet (queued or retrying).
    ///
    /// The job becomes `canceled` and is never delivered; a running job cannot be discarded.
    Discard {
        /// The job id.
        id: JobId,
    },
}

fn parse_state(s: &str) -> Result<JobState, String> {
    JobState::parse(s).ok_or_else(|| {
        let all: Vec<&str> = JobState::ALL.iter().map(|s| s.as_str()).collect();
        format!("unknown state `{s}` (one of: {})", all.join(", "))
    })
}

fn parse_limit(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("must be a number from 1 to {MAX_LIMIT}")),
    }
}

/// Run one `jobs` command against the configured store; returns the text to print.
pub async fn run(config: &Config, command: JobsCommand) -> Result<String, String> {
    let store = crate::queue::open_store(&config.store, Some(POOL_SIZE))
        .await
        .map_err(|e| open_error(config, &e))?;
    execute(&*store, command).await
}

/// Run one `jobs` command against an open store (what [`run`] does once the store is open).
pub async fn execute(store: &dyn JobStore, command: JobsCommand) -> Result<String, String> {
    match command {
        JobsCommand::List {
            state,
            operation,
            site,
            limit,
            cursor,
            json,
        } => {
            let filter = JobFilter {
                site,
                state,
                operation,
                before: cursor,
                limit: limit.clamp(1, MAX_LIMIT),
            };
            let page = store.list(&filter).await.map_err(store_error)?;
            if json {
                let out = serde_json::json!({
                    "jobs": page.jobs,
                    "next_cursor": page.next_cursor,
                });
                return Ok(pretty(&out));
            }
            let mut out = table(&page.jobs);
            if let Some(next) = page.next_cursor {
                let _ = writeln!(
                    out,
                    "next cursor: {next} (pass it as --cursor for the next page)"
                );
            }
            Ok(out)
        }
        JobsCommand::Show { id } => {
            let job = existing(store, id).await?;
            Ok(pretty(&job))
        }
        JobsCommand::Retry { id } => {
            let before = existing(store, id).await?;
            if let Err(refusal) = operator::check_retry(store, &before)
                .await
                .map_err(store_error)?
            {
                return Err(format!("job {id} is not retried: {refusal}"));
            }
            match store.retry(id).await {
                Ok(job) => Ok(format!(
                    "job {id} is {} again (was {} after {} attempt(s); attempts reset)\n",
                    job.state.as_str(),
                    before.state.as_str(),
                    before.attempts
                )),
                Err(StoreError::InvalidState { state }) => Err(format!(
                    "job {id} is {}; only failed or dead jobs can be retried{}",
                    state.as_str(),
                    match state {
                        JobState::Queued | JobState::Retrying | JobState::Running =>
                            " (it is still being delivered)",
                        JobState::Succeeded => " (it was delivered)",
                        JobState::Superseded => " (a newer job carries its values)",
                        _ => "",
                    }
                )),
                Err(e) => Err(op_error(id, e)),
            }
        }
        JobsCommand::Discard { id } => {
            let job = existing(store, id).await?;
            if let Err(refusal) = operator::check_cancel(&job) {
                return Err(format!("job {id} is not discarded: {refusal}"));
            }
            discard(store, id).await
        }
    }
}

/// The job with `id`, or the command's error saying there is none.
async fn existing(store: &dyn JobStore, id: JobId) -> Result<JobRecord, String> {
    store
        .get(id)
        .await
        .map_err(store_error)?
        .ok_or_else(|| not_found(id))
}

/// Cancels a job the operator may discard.
async fn discard(store: &dyn JobStore, id: JobId) -> Result<String, String> {
    match store.cancel(id).await {
        Ok(job) => Ok(format!(
            "job {id} is {}; it will not be delivered\n",
            job.state.as_str()
        )),
        Err(StoreError::InvalidState { state }) => Err(format!(
            "job {id} is {}; only queued or retrying jobs can be discarded{}",
            state.as_str(),
            match state {
                JobState::Running => " (it is being delivered right now)",
                s if s.is_terminal() => " (it is already finished)",
                _ => "",
            }
        )),
        Err(e) => Err(op_error(id, e)),
    }
}

fn not_found(id: JobId) -> String {
    format!(
        "no job with id {id} (it may never have existed, or was purged after the retention period)"
    )
}

fn op_error(id: JobId, e: StoreError) -> String {
    match e {
        StoreError::NotFound => not_found(id),
        other => store_error(other),
    }
}

fn store_error(e: StoreError) -> String {
    e.to_string()
}

/// The message for a store that cannot be opened; for a locked embedded store, what to do instead.
fn open_error(config: &Config, e: &StoreError) -> String {
    if let (StoreConfig::Embedded { dir }, true) = (&config.store, embedded::is_in_use(e)) {
        let base = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", config.listen));
        return format!(
            "the embedded job store {} is locked: a running gateway holds its file lock, so this \
             command cannot open it.\nEither use the gateway's HTTP API instead (`GET /v1/jobs` \
             with a token that has the `jobs:admin` scope, e.g. `curl -H \"Authorization: Bearer \
             $TOKEN\" {base}/v1/jobs`), or stop the gateway and run this command again.",
            dir.join(embedded::FILE_NAME).display()
        );
    }
    format!("cannot open the job store: {e}")
}

fn pretty<T: serde::Serialize>(v: &T) -> String {
    let mut s = serde_json::to_string_pretty(v).expect("job records serialize");
    s.push('\n');
    s
}

/// `last_error` on one line, at most [`ERROR_WIDTH`] characters.
fn short_error(e: Option<&str>) -> String {
    let Some(e) = e else {
        return "-".into();
    };
    let one_line: String = e
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if one_line.chars().count() <= ERROR_WIDTH {
        one_line
    } else {
        let cut: String = one_line.chars().take(ERROR_WIDTH - 1).collect();
        format!("{cut}…")
    }
}

/// The jobs as an aligned table (the last column is not padded).
fn table(jobs: &[JobRecord]) -> String {
    if jobs.is_empty() {
        return "no jobs\n".into();
    }
    const HEADER: [&str; 7] = [
        "ID",
        "STATE",
        "OPERATION",
        "SITE",
        "ATTEMPTS",
        "UPDATED_AT",
        "LAST_ERROR",
    ];
    let rows: Vec<[String; 7]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.to_string(),
                j.state.as_str().to_owned(),
                j.operation.clone(),
                j.site.clone(),
                j.attempts.to_string(),
                j.updated_at.to_rfc3339_opts(SecondsFormat::Secs, true),
                short_error(j.last_error.as_deref()),
            ]
        })
        .collect();
    let mut widths = HEADER.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[&str]| {
        let mut l = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                l.push_str(cell);
            } else {
                let pad = widths[i] - cell.chars().count();
                l.push_str(cell);
                l.extend(std::iter::repeat_n(' ', pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADER);
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        line(&cells);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        jobs: JobsCommand,
    }

    #[test]
    fn parses_list_flags() {
        let cli = Cli::try_parse_from([
            "x", "list", "--state", "failed", "--site", "site-a", "--limit", "5", "--json",
        ])
        .unwrap();
        assert_eq!(
            cli.jobs,
            JobsCommand::List {
                state: Some(JobState::Failed),
                operation: None,
                site: Some("site-a".into()),
                limit: 5,
                cursor: None,
                json: true,
            }
        );
        let e = Cli::try_parse_from(["x", "list", "--state", "nope"])
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("one of: queued"), "{e}");
        assert!(Cli::try_parse_from(["x", "list", "--limit", "0"]).is_err());
        assert!(Cli::try_parse_from(["x", "show", "not-a-uuid"]).is_err());
        let default = Cli::try_parse_from(["x", "list"]).unwrap();
        assert!(matches!(default.jobs, JobsCommand::List { limit: 50, .. }));
    }

    #[test]
    fn short_error_is_one_line_and_cut() {
        assert_eq!(short_error(None), "-");
        assert_eq!(short_error(Some("a\nb")), "a b");
        let long = "é".repeat(100);
        let s = short_error(Some(&long));
        assert_eq!(s.chars().count(), ERROR_WIDTH);
        assert!(s.ends_with('…'));
    }
}
