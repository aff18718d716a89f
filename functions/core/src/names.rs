//! Lambda names as the input carries them: function names or ARNs, alias names, version numbers. The rules are
//! Lambda's own (API reference: FunctionName, Alias Name, Qualifier patterns), checked here so that a typo is
//! an `InvalidInput` before any AWS call, not a confusing service error halfway through.

use std::fmt;

use serde::{Deserialize, Serialize};

const MAX_FUNCTION_NAME: usize = 64;
const MAX_ALIAS_NAME: usize = 128;

/// A Lambda function as the input names it: a name, a partial ARN (`123456789012:function:name`) or a full ARN.
/// AWS calls get the text exactly as given (Lambda accepts all three forms); `name` is the bare function name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionRef {
    raw: String,
    pub name: String,
    pub partition: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    /// A version or alias after the name (`name:live`); never present on a deployment's `functionName`.
    pub qualifier: Option<String>,
}

/// Whether a qualifier (`:live`, `:3`) may follow the function name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Qualifier {
    Allowed,
    Forbidden,
}

impl FunctionRef {
    /// Parses a function name or ARN. The error is the reason, for the caller to attach to its field.
    pub fn parse(text: &str, qualifier: Qualifier) -> Result<Self, String> {
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        if text.trim() != text {
            return Err("must not start or end with white space".into());
        }
        let parts: Vec<&str> = text.split(':').collect();
        let (partition, region, account, rest) = if parts[0] == "arn" {
            match parts.as_slice() {
                [
                    "arn",
                    partition,
                    "lambda",
                    region,
                    account,
                    "function",
                    rest @ ..,
                ] if !rest.is_empty() => (Some(*partition), Some(*region), Some(*account), rest),
                _ => {
                    return Err(format!(
                        "`{text}` is not a Lambda function ARN like arn:aws:lambda:us-east-1:123456789012:function:NAME"
                    ));
                }
            }
        } else if parts.len() >= 3 && parts[1] == "function" {
            (None, None, Some(parts[0]), &parts[2..])
        } else {
            (None, None, None, &parts[..])
        };

        if let Some(p) = partition {
            let suffix_ok = p
                .strip_prefix("aws")
                .is_some_and(|s| s.chars().all(|c| c.is_ascii_alphabetic() || c == '-'));
            if !suffix_ok {
                return Err(format!(
                    "`{p}` is not an AWS partition (aws, aws-cn, aws-us-gov, …)"
                ));
            }
        }
        if let Some(r) = region
            && !is_region(r)
        {
            return Err(format!("`{r}` is not an AWS region like us-east-1"));
        }
        if let Some(a) = account
            && !(a.len() == 12 && a.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(format!("`{a}` is not a 12-digit AWS account id"));
        }

        let (name, qualifier_text) = match rest {
            [name] => (*name, None),
            [name, q] => (*name, Some(*q)),
            _ => return Err(format!("`{text}` has too many `:`-separated parts")),
        };
        check_function_name(name)?;
        if let Some(q) = qualifier_text {
            if qualifier == Qualifier::Forbidden {
                return Err(format!(
                    "must name the function without a version or alias (found `:{q}`); put the alias in `alias`"
                ));
            }
            if q.is_empty()
                || q.len() > MAX_ALIAS_NAME
                || !(q == "$LATEST" || q.chars().all(is_name_char))
            {
                return Err(format!("`{q}` is not a valid version or alias qualifier"));
            }
        }
        Ok(Self {
            raw: text.to_owned(),
            name: name.to_owned(),
            partition: partition.map(str::to_owned),
            region: region.map(str::to_owned),
            account: account.map(str::to_owned),
            qualifier: qualifier_text.map(str::to_owned),
        })
    }

    /// The text as given, which is what AWS calls take.
    pub fn as_str(&self) -> &str {
        &self.raw
    }
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

impl Serialize for FunctionRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-' || c == '_'
}

fn check_function_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("the function name must not be empty".into());
    }
    if name.len() > MAX_FUNCTION_NAME {
        return Err(format!(
            "the function name is {} characters long; Lambda allows at most {MAX_FUNCTION_NAME}",
            name.len()
        ));
    }
    if let Some(c) = name.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "the function name `{name}` contains `{c}`; only letters, digits, `-` and `_` are allowed"
        ));
    }
    Ok(())
}

/// `us-east-1`, `us-gov-west-1`, `cn-north-1`, `eu-central-2`: two letters, optional `-gov`/`-iso*`, a word, a digit.
fn is_region(r: &str) -> bool {
    let parts: Vec<&str> = r.split('-').collect();
    let (country, middle, digit) = match parts.as_slice() {
        [country, middle @ .., digit] if !middle.is_empty() => (*country, middle, *digit),
        _ => return false,
    };
    let lower = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase());
    country.len() == 2
        && lower(country)
        && middle.len() <= 2
        && middle.iter().all(|m| lower(m))
        && digit.len() == 1
        && digit.bytes().all(|b| b.is_ascii_digit())
}

/// Checks an alias name by Lambda's rules: 1–128 of `[A-Za-z0-9-_]`, not all digits (that would be a version).
pub fn check_alias_name(alias: &str) -> Result<(), String> {
    if alias.is_empty() {
        return Err("must not be empty".into());
    }
    if alias == "$LATEST" {
        return Err("`$LATEST` is a version, not an alias".into());
    }
    if alias.len() > MAX_ALIAS_NAME {
        return Err(format!(
            "is {} characters long; Lambda allows at most {MAX_ALIAS_NAME}",
            alias.len()
        ));
    }
    if let Some(c) = alias.chars().find(|c| !is_name_char(*c)) {
        return Err(format!(
            "`{alias}` contains `{c}`; only letters, digits, `-` and `_` are allowed"
        ));
    }
    if alias.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "`{alias}` is all digits, which Lambda reads as a version number"
        ));
    }
    Ok(())
}

/// A published Lambda version number (1, 2, …). `$LATEST` is never a deployment target: it is mutable, and a
/// weighted alias cannot point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Version(u64);

impl Version {
    pub fn new(n: u64) -> Option<Self> {
        (n >= 1).then_some(Self(n))
    }

    pub fn get(self) -> u64 {
        self.0
    }

    /// Parses the version as Lambda prints it. The error is the reason.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "$LATEST" {
            return Err(
                "must be a published version number, not `$LATEST`: publish a version and deploy that".into(),
            );
        }
        if text.is_empty() {
            return Err("must not be empty".into());
        }
        let digits = text.bytes().all(|b| b.is_ascii_digit());
        if !digits || (text.len() > 1 && text.starts_with('0')) {
            return Err(format!(
                "`{text}` is not a version number; use the number `publish-version` printed, like \"7\""
            ));
        }
        match text.parse::<u64>() {
            Ok(0) => Err("must be a published version number (1 or more)".into()),
            Ok(n) => Ok(Self(n)),
            Err(_) => Err(format!("`{text}` is larger than any Lambda version number")),
        }
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// Read as users write it: `"7"` or `7`.
impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = VersionText::deserialize(d)?.to_text();
        Version::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// Lambda's API and console print versions as strings; keep that form on the wire.
impl Serialize for Version {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// The target version as users write it: `"7"` (as Lambda prints it) or `7` (as a pipeline variable may expand).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(untagged, expecting = "must be a published version number like \"7\"")]
pub enum VersionText {
    Text(String),
    Number(u64),
}

impl VersionText {
    pub fn to_text(&self) -> String {
        match self {
            VersionText::Text(s) => s.clone(),
            VersionText::Number(n) => n.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn function_ref_accepts_the_three_forms_lambda_accepts() {
        let name = FunctionRef::parse("orders-api", Qualifier::Forbidden).unwrap();
        assert_eq!(
            (name.name.as_str(), name.account.as_deref()),
            ("orders-api", None)
        );

        let partial =
            FunctionRef::parse("123456789012:function:orders-api", Qualifier::Forbidden).unwrap();
        assert_eq!(partial.name, "orders-api");
        assert_eq!(partial.account.as_deref(), Some("123456789012"));

        let arn = "arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:orders_api";
        let full = FunctionRef::parse(arn, Qualifier::Forbidden).unwrap();
        assert_eq!(full.name, "orders_api");
        assert_eq!(full.region.as_deref(), Some("us-gov-west-1"));
        assert_eq!(full.partition.as_deref(), Some("aws-us-gov"));
        assert_eq!(full.as_str(), arn);
    }

    #[test]
    fn function_ref_qualifier_only_where_allowed() {
        let hook = FunctionRef::parse("smoke:live", Qualifier::Allowed).unwrap();
        assert_eq!(
            (hook.name.as_str(), hook.qualifier.as_deref()),
            ("smoke", Some("live"))
        );
        let err = FunctionRef::parse("orders:live", Qualifier::Forbidden).unwrap_err();
        assert!(err.contains("without a version or alias"), "{err}");
    }

    #[test]
    fn function_ref_rejects_malformed_arns_with_the_part_that_is_wrong() {
        let cases = [
            ("arn:aws:s3:::bucket", "is not a Lambda function ARN"),
            (
                "arn:aws:lambda:us-east-1:1234:function:f",
                "`1234` is not a 12-digit AWS account id",
            ),
            (
                "arn:aws:lambda:useast1:123456789012:function:f",
                "`useast1` is not an AWS region",
            ),
            (
                "arn:gcp:lambda:us-east-1:123456789012:function:f",
                "`gcp` is not an AWS partition",
            ),
            ("orders api", "contains ` `"),
            ("a:b:c:d", "too many"),
            ("", "must not be empty"),
        ];
        for (input, expected) in cases {
            let err = FunctionRef::parse(input, Qualifier::Allowed).unwrap_err();
            assert!(err.contains(expected), "{input}: {err}");
        }
    }

    #[test]
    fn regions() {
        for ok in [
            "us-east-1",
            "eu-central-2",
            "us-gov-west-1",
            "cn-north-1",
            "us-isob-east-1",
        ] {
            assert!(is_region(ok), "{ok}");
        }
        for bad in [
            "us-east",
            "useast-1",
            "US-EAST-1",
            "us-east-10",
            "u-east-1",
            "us--1",
        ] {
            assert!(!is_region(bad), "{bad}");
        }
    }

    #[test]
    fn versions() {
        assert_eq!(Version::parse("7").unwrap().get(), 7);
        for (bad, why) in [
            ("$LATEST", "not `$LATEST`"),
            ("0", "1 or more"),
            ("07", "not a version number"),
            ("v7", "not a version number"),
            ("-1", "not a version number"),
            ("", "must not be empty"),
        ] {
            let err = Version::parse(bad).unwrap_err();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn alias_names() {
        assert!(check_alias_name("live").is_ok());
        assert!(check_alias_name("blue_green-2").is_ok());
        assert!(
            check_alias_name("12")
                .unwrap_err()
                .contains("version number")
        );
        assert!(check_alias_name("").unwrap_err().contains("empty"));
        assert!(check_alias_name("a.b").unwrap_err().contains("`.`"));
    }
}
