//! Full-text search terms: how titles and descriptions are split into the terms
//! every backend indexes, and how a query is split and bounded.

use super::Incident;
use crate::error::{Error, Result};

/// Splits text into search terms: maximal runs of alphanumeric characters,
/// lower-cased, deduplicated and sorted. Full-text search matches whole terms, so
/// every backend (FTS5, `tsvector`, a term array) can index the same thing.
///
/// A word longer than [`MAX_TERM_CHARS`] becomes its first [`MAX_TERM_CHARS`]
/// characters: a long word is stored whole and found by that prefix, and no
/// backend meets a term longer than its index allows.
pub fn search_terms(text: &str) -> Vec<String> {
    let mut terms: Vec<String> = text
        .split(|c: char| !c.is_alphanumeric())
        .filter(|t| !t.is_empty())
        .map(|t| {
            let lower = t.to_lowercase();
            match lower.char_indices().nth(MAX_TERM_CHARS) {
                Some((cut, _)) => lower[..cut].to_string(),
                None => lower,
            }
        })
        .collect();
    terms.sort_unstable();
    terms.dedup();
    terms
}

/// Longest search term, in characters (after lower-casing): longer words in
/// titles and descriptions are indexed by this prefix; a longer term in a query
/// is refused.
pub const MAX_TERM_CHARS: usize = 64;

/// Most distinct terms in one search query.
pub const MAX_QUERY_TERMS: usize = 32;

/// The terms of a search query ([`search_terms`]), refused (naming `q`) when one
/// is longer than [`MAX_TERM_CHARS`] or there are more than [`MAX_QUERY_TERMS`].
pub fn query_terms(q: &str) -> Result<Vec<String>> {
    let long = q
        .split(|c: char| !c.is_alphanumeric())
        .any(|word| word.chars().flat_map(char::to_lowercase).count() > MAX_TERM_CHARS);
    if long {
        return Err(Error::validation(
            "q",
            format!("expected search words of at most {MAX_TERM_CHARS} characters"),
        ));
    }
    let terms = search_terms(q);
    if terms.len() > MAX_QUERY_TERMS {
        return Err(Error::validation(
            "q",
            format!("expected at most {MAX_QUERY_TERMS} search words"),
        ));
    }
    Ok(terms)
}

/// The search terms of an incident's title and description.
pub fn incident_terms(i: &Incident) -> Vec<String> {
    let mut terms = search_terms(&i.title);
    terms.extend(search_terms(&i.description));
    terms.sort_unstable();
    terms.dedup();
    terms
}
