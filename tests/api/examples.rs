//! Every example the OpenAPI document gives is true of the sandbox as it starts: each request
//! built from the documented examples (path parameters, query parameters and bodies), sent to a
//! freshly started sandbox gateway (the README's first command), gets a documented success
//! status, and every job an example makes ends `succeeded` (or `superseded` by a later report of
//! the same example set). Job ids have no example (a fresh gateway has no jobs): the job routes
//! are sent the id of a job an example made, and must answer one of their documented statuses.
//! Approve and reject are alternatives for the one pending order: reject is tried on a sandbox of
//! its own.

use serde_json::Value;

use crate::sandbox::{Sandbox, demo_token};

/// The example of a parameter or a media type: its own, or its schema's (following one `$ref`).
fn example_of(object: &Value, document: &Value) -> Option<Value> {
    if let Some(example) = object.get("example") {
        return Some(example.clone());
    }
    if let Some(example) = object
        .get("examples")
        .and_then(Value::as_object)
        .and_then(|e| e.values().next())
        .and_then(|e| e.get("value"))
    {
        return Some(example.clone());
    }
    let schema = object.get("schema")?;
    if let Some(example) = schema.get("example") {
        return Some(example.clone());
    }
    let name = schema.get("$ref")?.as_str()?.rsplit('/').next()?;
    document["components"]["schemas"][name]
        .get("example")
        .cloned()
}

/// The operation tried alone, on a sandbox of its own.
const ALTERNATIVE: (&str, &str) = ("POST", "/v1/orders/{uuid}/reject");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_documented_example_works_against_a_fresh_sandbox() {
    let everything_else = try_examples(|method, path| (method, path) != ALTERNATIVE).await;
    assert!(
        everything_else >= 30,
        "only {everything_else} operations were tried"
    );
    let alone = try_examples(|method, path| (method, path) == ALTERNATIVE).await;
    assert_eq!(alone, 1);
}

/// Waits until the job is terminal (at most 30 s).
async fn wait_until_finished(client: &reqwest::Client, sandbox: &Sandbox, token: &str, id: &str) {
    let within = std::time::Duration::from_secs(30);
    crate::support::poll::job_where(client, &sandbox.address, token, id, within, |state| {
        ["succeeded", "superseded", "failed", "dead", "canceled"].contains(&state)
    })
    .await;
}

/// Sends the documented example of every operation `wanted` picks to a fresh sandbox, checks
/// each answer and each job's end; returns how many operations were tried.
async fn try_examples(wanted: impl Fn(&str, &str) -> bool) -> usize {
    let dir = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::start(dir.path());
    let token = demo_token(dir.path());
    let allocator_token = std::fs::read_to_string(dir.path().join("data/demo-allocator.token"))
        .expect("the sandbox wrote the allocator's token")
        .trim()
        .to_string();
    let client = reqwest::Client::new();
    let document: Value = client
        .get(format!("{}/openapi.json", sandbox.address))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();

    // Writes first, so that the job routes have a job to name.
    let mut operations: Vec<(String, String, Value)> = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let method = method.to_uppercase();
            if wanted(&method, path) {
                operations.push((method, path.clone(), operation.clone()));
            }
        }
    }
    operations.sort_by_key(|(_, path, _)| path.starts_with("/v1/jobs"));

    let mut job_id: Option<String> = None;
    let mut sent = 0;
    for (method, path, operation) in operations {
        let documented: Vec<u16> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(|s| s.parse().unwrap())
            .collect();
        let mut url = path.clone();
        let mut query = Vec::new();
        let mut headers: Vec<(String, String)> = Vec::new();
        let mut names_a_job = false;
        for parameter in operation["parameters"].as_array().into_iter().flatten() {
            let name = parameter["name"].as_str().unwrap();
            let example = example_of(parameter, &document);
            match parameter["in"].as_str().unwrap() {
                "path" => {
                    let value = match example {
                        Some(v) => v.as_str().unwrap().to_string(),
                        None => {
                            assert!(
                                path.starts_with("/v1/jobs/"),
                                "{method} {path}: the path parameter `{name}` has no example"
                            );
                            names_a_job = true;
                            let id = job_id.clone().expect("a documented write made a job");
                            // Finished first, so that a cancel cannot undo an example's work.
                            wait_until_finished(&client, &sandbox, &token, &id).await;
                            id
                        }
                    };
                    url = url.replace(&format!("{{{name}}}"), &value);
                }
                "query" => {
                    if let Some(v) = example {
                        let text = v.as_str().map(str::to_owned).unwrap_or(v.to_string());
                        query.push((name.to_string(), text));
                    }
                }
                // A header the operation requires (an allocation's Idempotency-Key) is sent
                // with its example.
                "header" if parameter["required"] == true => {
                    if let Some(v) = example {
                        let text = v.as_str().map(str::to_owned).unwrap_or(v.to_string());
                        headers.push((name.to_string(), text));
                    }
                }
                _ => {}
            }
        }
        // An allocator's operations are tried with the sandbox's allocator site: the service
        // provider's site cannot allocate.
        let caller = if path.starts_with("/v1/allocations") {
            &allocator_token
        } else {
            &token
        };
        let mut request = client
            .request(method.parse().unwrap(), format!("{}{url}", sandbox.address))
            .query(&query)
            .bearer_auth(caller);
        for (name, value) in &headers {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(body) = operation.get("requestBody") {
            let media = &body["content"]["application/json"];
            let example = example_of(media, &document)
                .unwrap_or_else(|| panic!("{method} {path}: the request body has no example"));
            request = request.json(&example);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let answer = response.text().await.unwrap();
        let expected_ok = if names_a_job {
            documented.contains(&status)
        } else {
            (200..300).contains(&status) && documented.contains(&status)
        };
        assert!(
            expected_ok,
            "{method} {url} with the documented example answered {status} \
             (documented: {documented:?}): {answer}"
        );
        if job_id.is_none()
            && let Ok(job) = serde_json::from_str::<Value>(&answer)
            && let Some(id) = job["job_id"].as_str()
        {
            job_id = Some(id.to_string());
        }
        sent += 1;
    }
    // Every job an example made lands.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let jobs: Value = client
            .get(format!("{}/v1/jobs?limit=500", sandbox.address))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let jobs = jobs["jobs"].as_array().unwrap().clone();
        let unfinished = jobs
            .iter()
            .filter(|j| {
                !["succeeded", "superseded", "failed", "dead", "canceled"]
                    .contains(&j["state"].as_str().unwrap())
            })
            .count();
        if unfinished == 0 {
            for job in &jobs {
                assert!(
                    ["succeeded", "superseded"].contains(&job["state"].as_str().unwrap()),
                    "a job made by a documented example did not land: {job}"
                );
            }
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "jobs still running: {jobs:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sandbox.kill();
    sent
}
