//! Redis key templates such as `cold:{{orders}}:{order_id}`.
//!
//! A template is literal text with `{column}` placeholders that are replaced
//! by a row's column values when a key is rendered (see
//! [`crate::encode::RowEncoder`]). `{{` and `}}` stand for literal `{` and `}`,
//! so `cold:{{orders}}:{order_id}` renders as `cold:{orders}:42` (handy for
//! Redis Cluster hash tags). Parsing is strict: every template must contain at
//! least one placeholder, because a key that does not depend on the row would
//! make every row overwrite the same Redis key.

use std::fmt;
use std::str::FromStr;

/// One piece of a parsed [`KeyTemplate`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum TemplatePart {
    /// Text copied verbatim into the key; escaped braces are already unescaped
    /// (`{{` is stored as `{`). Adjacent literal text is merged into one part.
    Literal(String),
    /// A `{column}` placeholder, holding the column name exactly as written
    /// (no whitespace trimming, case-sensitive).
    Column(String),
}

/// Why a key template could not be parsed.
///
/// Every `position` is a 0-based byte offset into the template text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TemplateError {
    /// A `{` opened a placeholder that never ends with `}`.
    #[error("unterminated placeholder: '{{' at position {position} has no closing '}}'")]
    Unterminated {
        /// Offset of the opening `{`.
        position: usize,
    },
    /// A `}` appeared outside a placeholder without being doubled as `}}`.
    #[error("unbalanced '}}' at position {position} (write '}}}}' for a literal brace)")]
    UnbalancedClose {
        /// Offset of the stray `}`.
        position: usize,
    },
    /// A `{` appeared inside a placeholder, e.g. `{a{b}`.
    #[error("unexpected '{{' inside the placeholder at position {position}")]
    NestedOpen {
        /// Offset of the placeholder's opening `{`.
        position: usize,
    },
    /// A placeholder with no column name: `{}`.
    #[error("empty placeholder '{{}}' at position {position}")]
    EmptyPlaceholder {
        /// Offset of the placeholder's opening `{`.
        position: usize,
    },
    /// The template has no placeholder at all.
    #[error("key template has no {{column}} placeholder; a key must depend on the row")]
    NoPlaceholder,
}

/// A parsed key template: literal text interleaved with column placeholders.
///
/// Build with [`KeyTemplate::parse`] (or `str::parse`, `TryFrom<String>`, or
/// serde from a string). [`Display`](fmt::Display) returns the original
/// source text, so a template round-trips through configuration unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct KeyTemplate {
    source: String,
    parts: Vec<TemplatePart>,
}

impl KeyTemplate {
    /// Parses template text with `{column}` placeholders and `{{`/`}}` escapes.
    ///
    /// Fails on unbalanced or unterminated braces, on an empty placeholder
    /// `{}`, and when the template has no placeholder at all.
    pub fn parse(s: &str) -> Result<KeyTemplate, TemplateError> {
        let bytes = s.as_bytes();
        let mut parts = Vec::new();
        let mut literal = String::new();
        // Start of the pending run of plain literal bytes.
        let mut run_start = 0;
        let mut i = 0;
        // Braces are ASCII, so slicing at their byte offsets is always on a
        // UTF-8 character boundary.
        while i < bytes.len() {
            match bytes[i] {
                b'{' if bytes.get(i + 1) == Some(&b'{') => {
                    literal.push_str(&s[run_start..i]);
                    literal.push('{');
                    i += 2;
                    run_start = i;
                }
                b'}' if bytes.get(i + 1) == Some(&b'}') => {
                    literal.push_str(&s[run_start..i]);
                    literal.push('}');
                    i += 2;
                    run_start = i;
                }
                b'}' => return Err(TemplateError::UnbalancedClose { position: i }),
                b'{' => {
                    literal.push_str(&s[run_start..i]);
                    let open = i;
                    let rest = &bytes[open + 1..];
                    let close = match rest.iter().position(|&b| b == b'}' || b == b'{') {
                        Some(rel) if rest[rel] == b'}' => open + 1 + rel,
                        Some(_) => return Err(TemplateError::NestedOpen { position: open }),
                        None => return Err(TemplateError::Unterminated { position: open }),
                    };
                    if close == open + 1 {
                        return Err(TemplateError::EmptyPlaceholder { position: open });
                    }
                    if !literal.is_empty() {
                        parts.push(TemplatePart::Literal(std::mem::take(&mut literal)));
                    }
                    parts.push(TemplatePart::Column(s[open + 1..close].to_string()));
                    i = close + 1;
                    run_start = i;
                }
                _ => i += 1,
            }
        }
        literal.push_str(&s[run_start..]);
        if !literal.is_empty() {
            parts.push(TemplatePart::Literal(literal));
        }
        if !parts.iter().any(|p| matches!(p, TemplatePart::Column(_))) {
            return Err(TemplateError::NoPlaceholder);
        }
        Ok(KeyTemplate {
            source: s.to_string(),
            parts,
        })
    }

    /// The distinct column names used by placeholders, in order of first use.
    pub fn columns(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for part in &self.parts {
            if let TemplatePart::Column(c) = part {
                if !out.contains(&c.as_str()) {
                    out.push(c);
                }
            }
        }
        out
    }

    /// The parsed parts in template order; never empty and always containing
    /// at least one [`TemplatePart::Column`].
    pub fn parts(&self) -> &[TemplatePart] {
        &self.parts
    }

    /// The original template text, exactly as given to [`KeyTemplate::parse`].
    pub fn as_str(&self) -> &str {
        &self.source
    }
}

impl fmt::Display for KeyTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl FromStr for KeyTemplate {
    type Err = TemplateError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyTemplate::parse(s)
    }
}

impl TryFrom<String> for KeyTemplate {
    type Error = TemplateError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        KeyTemplate::parse(&s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lit(s: &str) -> TemplatePart {
        TemplatePart::Literal(s.to_string())
    }

    fn col(s: &str) -> TemplatePart {
        TemplatePart::Column(s.to_string())
    }

    #[test]
    fn parses_literals_and_columns() {
        let t = KeyTemplate::parse("cold:{{orders}}:{order_id}").unwrap();
        assert_eq!(t.parts(), &[lit("cold:{orders}:"), col("order_id")]);
        assert_eq!(t.columns(), vec!["order_id"]);
        assert_eq!(t.to_string(), "cold:{{orders}}:{order_id}");
        assert_eq!(t.as_str(), "cold:{{orders}}:{order_id}");
    }

    #[test]
    fn composite_and_repeated_columns() {
        let t = KeyTemplate::parse("{a}:{b}{a}-x").unwrap();
        assert_eq!(
            t.parts(),
            &[col("a"), lit(":"), col("b"), col("a"), lit("-x")]
        );
        assert_eq!(t.columns(), vec!["a", "b"]);
    }

    #[test]
    fn braces_escapes_everywhere() {
        let t = KeyTemplate::parse("{{}}{x}}}{{").unwrap();
        assert_eq!(t.parts(), &[lit("{}"), col("x"), lit("}{")]);
        let t = KeyTemplate::parse("{{{x}}}").unwrap();
        assert_eq!(t.parts(), &[lit("{"), col("x"), lit("}")]);
    }

    #[test]
    fn unicode_and_spaces_kept() {
        let t = KeyTemplate::parse("é:{ my col }:ü").unwrap();
        assert_eq!(t.parts(), &[lit("é:"), col(" my col "), lit(":ü")]);
    }

    #[test]
    fn errors() {
        use TemplateError::*;
        assert_eq!(
            KeyTemplate::parse("a:{id"),
            Err(Unterminated { position: 2 })
        );
        assert_eq!(
            KeyTemplate::parse("a}{id}"),
            Err(UnbalancedClose { position: 1 })
        );
        assert_eq!(
            KeyTemplate::parse("{id}}"),
            Err(UnbalancedClose { position: 4 })
        );
        assert_eq!(
            KeyTemplate::parse("x{a{b}"),
            Err(NestedOpen { position: 1 })
        );
        assert_eq!(
            KeyTemplate::parse("k:{}"),
            Err(EmptyPlaceholder { position: 2 })
        );
        assert_eq!(KeyTemplate::parse("static"), Err(NoPlaceholder));
        assert_eq!(KeyTemplate::parse("{{id}}"), Err(NoPlaceholder));
        assert_eq!(KeyTemplate::parse(""), Err(NoPlaceholder));
    }

    #[test]
    fn error_messages_name_problem_and_position() {
        let e = KeyTemplate::parse("ab{c").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unterminated placeholder: '{' at position 2 has no closing '}'"
        );
        let e = KeyTemplate::parse("a}").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unbalanced '}' at position 1 (write '}}' for a literal brace)"
        );
        let e = KeyTemplate::parse("{}").unwrap_err();
        assert_eq!(e.to_string(), "empty placeholder '{}' at position 0");
    }

    #[test]
    fn from_str_and_serde() {
        let t: KeyTemplate = "k:{id}".parse().unwrap();
        assert_eq!(t.columns(), vec!["id"]);
        let t: KeyTemplate = serde_json::from_str("\"k:{id}\"").unwrap();
        assert_eq!(t.to_string(), "k:{id}");
        assert!(serde_json::from_str::<KeyTemplate>("\"k\"").is_err());
    }

    mod properties {
        //! Property tests: templates built from generated pieces parse into
        //! exactly those pieces, and a single unbalanced brace is refused.

        use proptest::collection::vec;
        use proptest::prelude::*;
        use proptest::sample::select;

        use super::super::*;

        /// A piece of a template as the test builds it.
        #[derive(Debug, Clone)]
        enum Piece {
            /// Literal text, braces included (escaped when written).
            Literal(String),
            /// A placeholder's column name (never contains a brace).
            Column(String),
        }

        fn literal() -> impl Strategy<Value = String> {
            let ch = prop_oneof![3 => any::<char>(), 1 => select(vec!['{', '}', ':'])];
            vec(ch, 1..6).prop_map(String::from_iter)
        }

        fn column_name() -> impl Strategy<Value = String> {
            let free = vec(
                any::<char>().prop_filter("no braces", |c| !"{}".contains(*c)),
                1..6,
            )
            .prop_map(String::from_iter);
            // A few common names, so placeholders repeat.
            prop_oneof![select(vec!["id", "a", "b"]).prop_map(str::to_string), free]
        }

        fn piece() -> impl Strategy<Value = Piece> {
            prop_oneof![
                literal().prop_map(Piece::Literal),
                column_name().prop_map(Piece::Column)
            ]
        }

        /// Pieces with at least one placeholder.
        fn pieces() -> impl Strategy<Value = Vec<Piece>> {
            (
                vec(piece(), 0..8),
                column_name(),
                any::<prop::sample::Index>(),
            )
                .prop_map(|(mut pieces, column, at)| {
                    let at = at.index(pieces.len() + 1);
                    pieces.insert(at, Piece::Column(column));
                    pieces
                })
        }

        fn escape(text: &str) -> String {
            text.replace('{', "{{").replace('}', "}}")
        }

        /// The template text of the pieces as tokens: one per literal
        /// character (an escaped brace is a two-byte token) and one per
        /// placeholder.
        fn tokens(pieces: &[Piece]) -> Vec<String> {
            let mut tokens = Vec::new();
            for piece in pieces {
                match piece {
                    Piece::Literal(text) => {
                        tokens.extend(text.chars().map(|c| escape(&c.to_string())))
                    }
                    Piece::Column(name) => tokens.push(format!("{{{name}}}")),
                }
            }
            tokens
        }

        /// The parts the pieces must parse into: adjacent literals merged.
        fn expected_parts(pieces: &[Piece]) -> Vec<TemplatePart> {
            let mut parts: Vec<TemplatePart> = Vec::new();
            for piece in pieces {
                match (piece, parts.last_mut()) {
                    (Piece::Literal(text), Some(TemplatePart::Literal(last))) => {
                        last.push_str(text)
                    }
                    (Piece::Literal(text), _) => parts.push(TemplatePart::Literal(text.clone())),
                    (Piece::Column(name), _) => parts.push(TemplatePart::Column(name.clone())),
                }
            }
            parts
        }

        /// The template text that parses into `parts`.
        fn render(parts: &[TemplatePart]) -> String {
            parts
                .iter()
                .map(|part| match part {
                    TemplatePart::Literal(text) => escape(text),
                    TemplatePart::Column(name) => format!("{{{name}}}"),
                })
                .collect()
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn generated_templates_parse_into_their_pieces(pieces in pieces()) {
                let text: String = tokens(&pieces).concat();
                let template = KeyTemplate::parse(&text);
                prop_assert!(template.is_ok(), "{:?}: {:?}", text, template);
                let template = template.expect("checked above");
                let expected = expected_parts(&pieces);
                prop_assert_eq!(template.parts(), expected.as_slice());
                prop_assert_eq!(render(template.parts()), text.as_str());
                prop_assert_eq!(template.as_str(), text.as_str());
                prop_assert_eq!(template.to_string(), text.as_str());
                prop_assert_eq!(KeyTemplate::parse(&template.to_string()), Ok(template.clone()));
                let mut first_use: Vec<&str> = Vec::new();
                for piece in &pieces {
                    if let Piece::Column(name) = piece {
                        if !first_use.contains(&name.as_str()) {
                            first_use.push(name);
                        }
                    }
                }
                prop_assert_eq!(template.columns(), first_use);
            }

            #[test]
            fn a_single_unbalanced_brace_is_refused(
                pieces in pieces(),
                at in any::<prop::sample::Index>(),
                brace in select(vec!["{", "}"]),
            ) {
                let mut tokens = tokens(&pieces);
                tokens.insert(at.index(tokens.len() + 1), brace.to_string());
                let text = tokens.concat();
                let parsed = KeyTemplate::parse(&text);
                prop_assert!(parsed.is_err(), "{:?} parsed as {:?}", text, parsed);
            }

            /// Any text at all parses or is refused without panicking, and
            /// what parses is exactly the text.
            #[test]
            fn any_text_parses_exactly_or_is_refused(
                text in vec(prop_oneof![any::<char>(), select(vec!['{', '}', 'x'])], 0..16)
                    .prop_map(String::from_iter),
            ) {
                if let Ok(template) = KeyTemplate::parse(&text) {
                    prop_assert_eq!(render(template.parts()), text.as_str());
                    prop_assert!(!template.columns().is_empty());
                }
            }
        }
    }
}
