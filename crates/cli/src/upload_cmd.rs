//! `agencylink upload --api URL --token-file F --dataset D FILE`: send an
//! extract through the deployment's API, the way agencies upload.
//!
//! The file is validated here first with the same engine as `validate` (a
//! file-level problem is never sent; rows with errors only with
//! `--allow-invalid-rows`). Then `POST /uploads` returns a presigned form for
//! the agency's own landing prefix (the agency is the token's, not ours to
//! say), the file goes straight to S3 with it, and `GET /uploads/{id}` is
//! polled until the ingest function has handled it. Plain blocking HTTPS
//! (`ureq`, rustls): no AWS SDK, no AWS credentials on the agency's machine.
//!
//! The file's name is never sent (it often names a child): the form's key is
//! the API's `<id>.csv` and the multipart file name is `upload.csv`.

use std::fs::File;
use std::io::{self, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use agencylink_core::read::{self, InputFormat};
use agencylink_core::report::validate_all;
use agencylink_core::schema::Catalog;
use agencylink_core::validate::RowValidator;
use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::FormatArg;

/// Arguments of `agencylink upload`.
#[derive(Debug, clap::Args)]
pub(crate) struct UploadArgs {
    /// The deployment's API, e.g. https://api.partnership.example (https;
    /// http only to a loopback address, for tests).
    #[arg(long, value_name = "URL", env = "AGENCYLINK_API")]
    api: String,
    /// A file holding the access token (Cognito) the API accepts; readable
    /// by its owner only. The token is sent as `Authorization: Bearer`.
    #[arg(long, value_name = "FILE", env = "AGENCYLINK_TOKEN_FILE")]
    token_file: PathBuf,
    /// Dataset id, e.g. council.cin_referral.
    #[arg(long)]
    dataset: String,
    /// Input format; by default from the file name (.ndjson/.jsonl = NDJSON, else CSV).
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Send a file whose rows have errors (they are rejected at ingest and
    /// listed in the report); a file-level problem is never sent.
    #[arg(long)]
    allow_invalid_rows: bool,
    /// How long to wait for the ingest's result, in seconds (0: do not wait).
    #[arg(long, default_value_t = 900, value_name = "SECONDS")]
    wait: u64,
    /// The extract.
    file: PathBuf,
}

/// Whether `url` may carry a token or an extract: https, or http to a
/// loopback address only (a test's local server; nothing leaves the machine).
pub(crate) fn check_url(url: &str) -> Result<()> {
    let (scheme, rest) = url
        .split_once("://")
        .with_context(|| "the URL must start with https://".to_owned())?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = match authority.rsplit_once('@') {
        Some(_) => bail!("the URL must not hold a user name or password"),
        None => authority,
    };
    let host = if let Some(v6) = host.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        host.rsplit_once(':').map_or(host, |(h, _)| h)
    };
    if host.is_empty() {
        bail!("the URL names no host");
    }
    match scheme.to_ascii_lowercase().as_str() {
        "https" => Ok(()),
        "http" if is_loopback(host) => Ok(()),
        "http" => bail!("refusing http:// to {host}: use https (http only to a loopback address)"),
        other => bail!("refusing a {other}:// URL: use https"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

fn read_token(path: &Path) -> Result<String> {
    let meta = std::fs::metadata(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o077 != 0 {
            bail!(
                "the token file {} can be read by other users: `chmod 600 {}`",
                path.display(),
                path.display()
            );
        }
    }
    let _ = meta;
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the token file {}", path.display()))?;
    let token = text.trim().to_owned();
    if token.is_empty() || token.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "the token file {} must hold one token on one line",
            path.display()
        );
    }
    Ok(token)
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        // Error statuses are answers to show, not transport failures.
        .http_status_as_error(false)
        .timeout_connect(Some(Duration::from_secs(20)))
        .user_agent(concat!("agencylink/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// The `detail` of an API answer's problem document (RFC 9457), or the
/// status.
fn api_error(status: u16, body: &Value) -> String {
    match body.get("detail").and_then(Value::as_str) {
        Some(e) => format!("the API answered {status}: {e}"),
        None => format!("the API answered {status}"),
    }
}

fn read_json(resp: ureq::http::Response<ureq::Body>) -> Result<(u16, Value)> {
    let status = resp.status().as_u16();
    let text = resp
        .into_body()
        .with_config()
        .limit(64 << 20)
        .read_to_string()
        .context("reading the API's answer")?;
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Ok((status, body))
}

/// Run `agencylink upload`.
pub(crate) fn run(catalog: &Catalog, args: UploadArgs) -> Result<ExitCode> {
    check_url(&args.api).context("--api")?;
    let api = args.api.trim_end_matches('/').to_owned();
    let token = read_token(&args.token_file)?;
    let ds = crate::dataset(catalog, &args.dataset)?;
    let format = crate::input_format(args.format, &args.file);

    // 1. Check it here, with the engine the ingest function runs.
    let input = BufReader::with_capacity(
        1 << 16,
        File::open(&args.file).with_context(|| format!("cannot open {}", args.file.display()))?,
    );
    let mut rows = read::open(format, input, ds);
    let validator = RowValidator::new(ds).with_date_bounds(crate::today_bounds()?);
    let summary = validate_all(rows.as_mut(), &validator, |_| Ok(()))?;
    if summary.has_file_errors() {
        eprint!("{}", summary.render_text());
        eprintln!("not sent: the file has file-level problems (above); fix them and run again");
        return Ok(ExitCode::from(2));
    }
    if summary.invalid_rows > 0 && !args.allow_invalid_rows {
        eprint!("{}", summary.render_text());
        eprintln!(
            "not sent: {} of {} rows have errors (above); fix them, or send anyway with --allow-invalid-rows (those rows are rejected at ingest)",
            summary.invalid_rows, summary.rows
        );
        return Ok(ExitCode::from(1));
    }
    eprintln!(
        "checked: {} rows, {} with errors",
        summary.rows, summary.invalid_rows
    );

    // 2. A presigned form for the agency's own landing prefix.
    let agent = agent();
    let auth = format!("Bearer {token}");
    let ext = if format == InputFormat::Ndjson {
        "ndjson"
    } else {
        "csv"
    };
    let resp = agent
        .post(format!("{api}/uploads"))
        .header("Authorization", &auth)
        .header("Content-Type", "application/json")
        .send(json!({ "dataset": ds.id, "format": ext }).to_string())
        .with_context(|| format!("cannot reach the API at {api}"))?;
    let (status, created) = read_json(resp)?;
    if status != 201 {
        bail!("{}", api_error(status, &created));
    }
    let id = created["id"]
        .as_str()
        .context("the API gave no upload id")?;
    let form = &created["upload"];
    let url = form["url"].as_str().context("the API gave no upload URL")?;
    check_url(url).context("the upload URL")?;
    let max = form["max_bytes"].as_u64().unwrap_or(u64::MAX);
    let size = std::fs::metadata(&args.file)?.len();
    if size > max {
        bail!("the file is {size} bytes; the deployment takes at most {max}: split it");
    }

    // 3. The file, straight to S3 with the form.
    post_form(&agent, url, form, &args.file, size, ext)?;
    eprintln!("sent: upload {id}");
    if args.wait == 0 {
        println!("{}", json!({ "id": id, "status": "waiting" }));
        return Ok(ExitCode::SUCCESS);
    }

    // 4. Wait for the ingest function's result.
    let deadline = Instant::now() + Duration::from_secs(args.wait);
    let mut pause = Duration::from_millis(500);
    let answer = loop {
        let resp = agent
            .get(format!("{api}/uploads/{id}"))
            .header("Authorization", &auth)
            .call()
            .with_context(|| format!("cannot reach the API at {api}"))?;
        let (status, body) = read_json(resp)?;
        if status != 200 {
            bail!("{}", api_error(status, &body));
        }
        if body["upload"]["status"] != "waiting" {
            break body;
        }
        if Instant::now() >= deadline {
            eprintln!(
                "still waiting after {}s: the upload is sent; see it later with GET /uploads/{id}",
                args.wait
            );
            println!("{}", json!({ "id": id, "status": "waiting" }));
            return Ok(ExitCode::from(2));
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_secs(5));
    };
    Ok(print_summary(&answer))
}

/// The form's fields, then the file, as `multipart/form-data` with a
/// Content-Length (S3 takes no chunked POST), streamed from disk.
fn post_form(
    agent: &ureq::Agent,
    url: &str,
    form: &Value,
    file: &Path,
    size: u64,
    ext: &str,
) -> Result<()> {
    let fields = form["fields"]
        .as_object()
        .context("the API gave no form fields")?;
    let mut random = [0u8; 12];
    getrandom::fill(&mut random)
        .map_err(|e| anyhow::anyhow!("no randomness for the form boundary: {e}"))?;
    let boundary: String = random.iter().map(|b| format!("{b:02x}")).collect();
    let boundary = format!("agencylink-{boundary}");
    let mut head = String::new();
    for (k, v) in fields {
        let v = v.as_str().context("a form field is not text")?;
        if [k.as_str(), v]
            .iter()
            .any(|s| s.contains(['\r', '\n', '"']) || s.contains(&boundary))
        {
            bail!("the API gave a form field that cannot be sent");
        }
        head.push_str(&format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n"
        ));
    }
    let content_type = if ext == "csv" {
        "text/csv"
    } else {
        "application/x-ndjson"
    };
    head.push_str(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"upload.{ext}\"\r\nContent-Type: {content_type}\r\n\r\n"
    ));
    let tail = format!("\r\n--{boundary}--\r\n");
    let length = head.len() as u64 + size + tail.len() as u64;
    let data = File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
    let mut body = io::Cursor::new(head.into_bytes())
        .chain(data.take(size))
        .chain(io::Cursor::new(tail.into_bytes()));
    let resp = agent
        .post(url)
        .header(
            "Content-Type",
            format!("multipart/form-data; boundary={boundary}"),
        )
        .header("Content-Length", length.to_string())
        .send(ureq::SendBody::from_reader(&mut body))
        .with_context(|| "cannot reach the upload URL".to_owned())?;
    let status = resp.status().as_u16();
    if !(200..300).contains(&status) {
        // S3 answers XML: its <Code> and <Message> say which condition
        // failed and carry nothing of the file.
        let text = resp
            .into_body()
            .with_config()
            .limit(1 << 16)
            .read_to_string()
            .unwrap_or_default();
        let tag = |t: &str| {
            text.split(&format!("<{t}>"))
                .nth(1)
                .and_then(|s| s.split(&format!("</{t}>")).next())
                .map(str::to_owned)
        };
        bail!(
            "the upload was refused ({status}{}{})",
            tag("Code").map(|c| format!(", {c}")).unwrap_or_default(),
            tag("Message").map(|m| format!(": {m}")).unwrap_or_default()
        );
    }
    Ok(())
}

/// Print the result: JSON on stdout, a line for people on stderr; the exit
/// code says how it went (0 all rows in, 1 rows rejected, 2 not ingested).
fn print_summary(answer: &Value) -> ExitCode {
    let t = &answer["upload"];
    let r = &t["result"];
    let mut out = json!({
        "id": t["id"],
        "dataset": t["dataset"],
        "status": t["status"],
        "upload_id": t.get("upload_id").cloned().unwrap_or(Value::Null),
    });
    if let Some(result) = r.as_object() {
        for (k, v) in result {
            out[k] = v.clone();
        }
    }
    let report = &answer["report"];
    if let Some(errors) = report.get("errors").and_then(Value::as_array) {
        out["errors"] = Value::Array(errors.clone());
        out["errors_total"] = report["errors_total"].clone();
    }
    println!("{out}");
    match t["status"].as_str() {
        Some("ingested") => {
            let rejected = r["rows_rejected"].as_u64().unwrap_or(0);
            eprintln!(
                "ingested: {} rows in, {} accepted, {} rejected{}",
                r["rows_in"],
                r["rows_accepted"],
                rejected,
                if r["duplicate"] == true {
                    " (this file was uploaded before; nothing changed)"
                } else {
                    ""
                }
            );
            for e in report["errors"].as_array().into_iter().flatten().take(20) {
                eprintln!(
                    "  row {} (line {}) {}: {}",
                    e["row"],
                    e["line"],
                    e["field"].as_str().unwrap_or(""),
                    e["message"].as_str().unwrap_or("")
                );
            }
            if rejected > 0 {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            }
        }
        other => {
            eprintln!(
                "{}: {}",
                other.unwrap_or("not ingested"),
                r["reason"].as_str().unwrap_or("see the upload's status")
            );
            ExitCode::from(2)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn https_everywhere_but_loopback() {
        for ok in [
            "https://api.example.org",
            "https://api.example.org:8443/v1",
            "http://127.0.0.1:5123/bucket",
            "http://localhost:8080",
            "http://[::1]:9000/",
        ] {
            assert!(check_url(ok).is_ok(), "{ok}");
        }
        for bad in [
            "http://api.example.org",
            "http://10.0.0.1:80",
            "http://127.0.0.1.example.org/",
            "ftp://127.0.0.1/",
            "api.example.org",
            "https://user:pw@api.example.org",
            "https:///x",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }
}
