//! Packaged charts (`.tgz`, as `helm package` writes them), read as Helm's
//! `LoadArchiveFiles` reads them: a gzip'd tar whose entries are all under
//! one top directory (the chart's name), which is dropped from every path.

use std::io::Read as _;

/// The largest chart Helm unpacks (all files, decompressed): 100 MiB.
pub(crate) const MAX_CHART_SIZE: u64 = 100 * 1024 * 1024;

/// The largest file Helm unpacks from a chart: 5 MiB.
pub(crate) const MAX_FILE_SIZE: u64 = 5 * 1024 * 1024;

/// The files of the packaged chart `data`: paths relative to the chart
/// (`Chart.yaml`, `templates/x.yaml`), `/`-separated, in archive order,
/// with a leading UTF-8 byte-order mark removed. Directories and PAX
/// headers are skipped.
///
/// # Errors
/// Helm's refusals, in Helm's words: not gzip or not tar, an absolute path,
/// a path outside the chart's directory or naming a drive, `Chart.yaml`
/// outside the top directory, a file over 5 MiB or a chart over 100 MiB
/// decompressed, an archive without files.
pub(crate) fn files(data: &[u8]) -> Result<Vec<(String, Vec<u8>)>, String> {
    let gz = flate2::read::GzDecoder::new(data);
    let mut archive = tar::Archive::new(gz);
    let mut out = Vec::new();
    let mut remaining = MAX_CHART_SIZE;
    let entries = archive.entries().map_err(|e| e.to_string())?;
    for entry in entries {
        let mut entry = entry.map_err(|e| e.to_string())?;
        let kind = entry.header().entry_type();
        if kind.is_dir() || kind.is_pax_global_extensions() || kind.is_pax_local_extensions() {
            continue;
        }
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let name = inner_path(&raw)?;
        let size = entry.header().size().map_err(|e| e.to_string())?;
        if size > remaining {
            return Err(format!(
                "decompressed chart is larger than the maximum size {MAX_CHART_SIZE}"
            ));
        }
        if size > MAX_FILE_SIZE {
            return Err(format!(
                "decompressed chart file {raw:?} is larger than the maximum file size {MAX_FILE_SIZE}"
            ));
        }
        let mut data = Vec::new();
        let read = (&mut entry)
            .take(remaining)
            .read_to_end(&mut data)
            .map_err(|e| e.to_string())? as u64;
        remaining -= read;
        if read < size || remaining == 0 {
            return Err(format!(
                "decompressed chart is larger than the maximum size {MAX_CHART_SIZE}"
            ));
        }
        if data.starts_with(&[0xEF, 0xBB, 0xBF]) {
            data.drain(..3);
        }
        out.push((name, data));
    }
    if out.is_empty() {
        return Err("no files in chart archive".into());
    }
    Ok(out)
}

/// An entry's path relative to the chart: the top directory dropped,
/// cleaned as Go's `path.Clean`, and Helm's checks.
fn inner_path(raw: &str) -> Result<String, String> {
    let delimiter = if raw.contains('\\') { '\\' } else { '/' };
    let parts: Vec<&str> = raw.split(delimiter).collect();
    let joined = parts[1..].join("/");
    if joined.starts_with('/') {
        return Err("chart illegally contains absolute paths".into());
    }
    let n = clean(&joined);
    if n == "." {
        return Err(format!(
            "chart illegally contains content outside the base directory: {raw:?}"
        ));
    }
    if n.starts_with("..") {
        return Err("chart illegally references parent directory".into());
    }
    let b = n.as_bytes();
    if b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'/' {
        return Err("chart contains illegally named files".into());
    }
    if parts[0] == "Chart.yaml" {
        return Err("chart yaml not in base directory".into());
    }
    Ok(n)
}

/// Go's `path.Clean` for a relative path.
fn clean(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.last().is_some_and(|s| *s != "..") {
                    out.pop();
                } else {
                    out.push("..");
                }
            }
            s => out.push(s),
        }
    }
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A `.tgz` of `entries` (path, contents), as `tar czf` writes one.
    pub(crate) fn tgz(entries: &[(&str, &[u8])]) -> Vec<u8> {
        let mut builder = tar::Builder::new(flate2::write::GzEncoder::new(
            Vec::new(),
            flate2::Compression::default(),
        ));
        for (path, data) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(data.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            builder.append_data(&mut header, path, *data).unwrap();
        }
        builder.into_inner().unwrap().finish().unwrap()
    }

    #[test]
    fn drops_the_top_directory_and_the_bom() {
        let f = files(&tgz(&[
            ("sub/Chart.yaml", b"name: sub\n"),
            ("sub/templates/./a.yaml", b"\xEF\xBB\xBFa: 1\n"),
        ]))
        .unwrap();
        assert_eq!(
            f,
            [
                ("Chart.yaml".to_owned(), b"name: sub\n".to_vec()),
                ("templates/a.yaml".to_owned(), b"a: 1\n".to_vec())
            ]
        );
    }

    #[test]
    fn refuses_what_helm_refuses() {
        assert!(files(b"not gzip").is_err());
        assert_eq!(
            inner_path("sub/../../etc/passwd").unwrap_err(),
            "chart illegally references parent directory"
        );
        assert!(inner_path("Chart.yaml").is_err());
        assert_eq!(
            inner_path("sub/c:/x").unwrap_err(),
            "chart contains illegally named files"
        );
        assert_eq!(inner_path("sub/a//b/../c").unwrap(), "a/c");
        let big = vec![b'x'; (MAX_FILE_SIZE + 1) as usize];
        let e = files(&tgz(&[("sub/big.txt", &big)])).unwrap_err();
        assert!(e.contains("maximum file size"), "{e}");
    }
}
