//! The command line: which socket, how many connections, for how long,
//! and at what rate (none: a closed loop).

use std::path::PathBuf;

pub const USAGE: &str = "usage: rampart-status-load SOCKET --connections N --seconds D [--rate R] [--warmup W] [--label L] [--header]";

#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    pub socket: PathBuf,
    pub connections: usize,
    pub seconds: f64,
    /// Requests per second over all connections; `None`: closed loop.
    pub rate: Option<f64>,
    pub warmup: f64,
    pub label: Option<String>,
    pub header: bool,
}

pub fn parse(args: &[String]) -> Result<Options, String> {
    let mut it = args.iter();
    let socket = it.next().ok_or("no socket given")?.into();
    let mut options = Options {
        socket,
        connections: 1,
        seconds: 5.0,
        rate: None,
        warmup: 0.5,
        label: None,
        header: false,
    };
    fn number<T: std::str::FromStr>(flag: &str, value: Option<&String>) -> Result<T, String> {
        value
            .and_then(|v| v.parse().ok())
            .ok_or_else(|| format!("{flag} needs a number"))
    }
    while let Some(flag) = it.next() {
        match flag.as_str() {
            "--connections" => options.connections = number(flag, it.next())?,
            "--seconds" => options.seconds = number(flag, it.next())?,
            "--rate" => options.rate = Some(number(flag, it.next())?),
            "--warmup" => options.warmup = number(flag, it.next())?,
            "--label" => options.label = Some(it.next().ok_or("--label needs text")?.clone()),
            "--header" => options.header = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.connections == 0 {
        return Err("--connections must be at least 1".into());
    }
    if options.seconds.is_nan() || options.seconds <= 0.0 {
        return Err("--seconds must be more than 0".into());
    }
    if options.rate.is_some_and(|r| r.is_nan() || r <= 0.0) {
        return Err("--rate must be more than 0".into());
    }
    if options.warmup.is_nan() || options.warmup < 0.0 || options.warmup >= options.seconds {
        return Err("--warmup must be at least 0 and less than --seconds".into());
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(text: &str) -> Vec<String> {
        text.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn options_parse_and_refuse_nonsense() {
        let o = parse(&args("/s --connections 200 --seconds 10 --rate 10000")).unwrap();
        assert_eq!(
            (o.connections, o.seconds, o.rate),
            (200, 10.0, Some(10000.0))
        );
        assert_eq!(o.warmup, 0.5);
        assert!(parse(&args("/s --connections 0")).is_err());
        assert!(parse(&args("/s --rate -1")).is_err());
        assert!(parse(&args("/s --seconds 1 --warmup 1")).is_err());
        assert!(parse(&args("/s --bogus")).is_err());
        assert!(parse(&[]).is_err());
    }
}
