//! What the API server counts about itself.

/// The sum of `apiserver_request_total` over every label set on the API
/// server behind `client` (which needs `get` on the `/metrics` URL, as the
/// administrator has): every request it has answered since it started,
/// from every client, controllers included. Watches count once, when they
/// start.
///
/// # Errors
/// When `/metrics` cannot be read.
pub async fn api_requests_total(client: &kube::Client) -> Result<u64, kube::Error> {
    let request = http::Request::get("/metrics")
        .body(Vec::new())
        .expect("a static request");
    let text = client.request_text(request).await?;
    Ok(sum_of(&text, "apiserver_request_total"))
}

/// The sum of the samples of `metric` in Prometheus text exposition.
fn sum_of(text: &str, metric: &str) -> u64 {
    text.lines()
        .filter(|line| {
            line.strip_prefix(metric)
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_every_label_set_of_the_metric_only() {
        let text = "# HELP apiserver_request_total x\n\
                    # TYPE apiserver_request_total counter\n\
                    apiserver_request_total{code=\"200\",verb=\"GET\"} 12\n\
                    apiserver_request_total{code=\"201\",verb=\"POST\"} 3\n\
                    apiserver_request_total_other{code=\"200\"} 100\n\
                    apiserver_request_duration_seconds_count{verb=\"GET\"} 7\n";
        assert_eq!(sum_of(text, "apiserver_request_total"), 15);
    }
}
