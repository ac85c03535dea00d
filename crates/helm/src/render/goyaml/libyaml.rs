//! A safe event reader over `unsafe-libyaml`, the Rust translation of
//! libyaml 0.2.5.
//!
//! Why libyaml: go-yaml v2 (under `sigs.k8s.io/yaml`, which reads Helm's
//! manifests, values and `fromYaml`) is a line-by-line port of libyaml's
//! reader, scanner and parser, so libyaml accepts and refuses the same
//! texts with the same problems at the same marks. A YAML 1.2 parser such
//! as `granit-parser` differs at the edges that templates produce (a value
//! on the line below its key, a plain scalar ending in a comment, tabs,
//! text after the first document), which made valid charts fail. The few
//! places where libyaml 0.2.5 moved on from the version go-yaml ported are
//! handled in `load.rs`.

use std::ffi::CStr;
use std::mem::MaybeUninit;

use unsafe_libyaml as unsafe_sys;

/// A position in the text, 0-based as libyaml counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Mark {
    /// Character index.
    pub(crate) index: u64,
    /// Line, from 0.
    pub(crate) line: u64,
    /// Column, from 0.
    pub(crate) column: u64,
}

impl From<unsafe_sys::yaml_mark_t> for Mark {
    fn from(m: unsafe_sys::yaml_mark_t) -> Self {
        Self {
            index: m.index,
            line: m.line,
            column: m.column,
        }
    }
}

/// The stage of libyaml that refused the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stage {
    /// Decoding the characters.
    Reader,
    /// Tokens.
    Scanner,
    /// Events.
    Parser,
}

/// libyaml's error: its problem and where, and the context it was in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Error {
    pub(crate) stage: Stage,
    pub(crate) context: Option<String>,
    pub(crate) problem: String,
    pub(crate) problem_mark: Mark,
    pub(crate) context_mark: Mark,
}

/// How a scalar was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Style {
    Plain,
    SingleQuoted,
    DoubleQuoted,
    Literal,
    Folded,
}

/// One parsing event, with its data copied out of libyaml.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Event {
    StreamStart,
    StreamEnd,
    /// `version`: the `%YAML` directive's numbers, when there is one.
    DocumentStart {
        version: Option<(i32, i32)>,
    },
    DocumentEnd,
    Alias(String),
    Scalar {
        value: String,
        style: Style,
        anchor: Option<String>,
        tag: Option<String>,
    },
    /// `flow`: written `[...]`.
    SequenceStart {
        anchor: Option<String>,
        flow: bool,
    },
    SequenceEnd,
    /// `flow`: written `{...}`, or a single pair inside `[...]`.
    MappingStart {
        anchor: Option<String>,
        flow: bool,
    },
    MappingEnd,
}

/// libyaml's parser over one text.
pub(crate) struct Parser<'a> {
    /// Boxed because libyaml keeps a pointer to the parser in its read
    /// handler's data: it must not move once initialised.
    raw: Box<MaybeUninit<unsafe_sys::yaml_parser_t>>,
    /// The text libyaml reads from (it keeps a pointer into it).
    _input: &'a [u8],
    failed: bool,
}

impl<'a> Parser<'a> {
    /// A parser of `input`, with the encoding detected as libyaml (and
    /// go-yaml) detect it.
    pub(crate) fn new(input: &'a [u8]) -> Self {
        let mut raw = Box::new(MaybeUninit::<unsafe_sys::yaml_parser_t>::uninit());
        let ptr = raw.as_mut_ptr();
        // SAFETY: `ptr` points to memory that lives as long as `self`
        // (boxed, never moved); libyaml initialises it (its allocations are
        // Rust's and cannot fail short of aborting); the input outlives the
        // parser through `'a`.
        unsafe {
            if unsafe_sys::yaml_parser_initialize(ptr).fail {
                panic!("libyaml parser initialisation failed");
            }
            unsafe_sys::yaml_parser_set_input_string(ptr, input.as_ptr(), input.len() as u64);
        }
        Self {
            raw,
            _input: input,
            failed: false,
        }
    }

    /// The next event, where it starts and where it ends.
    ///
    /// # Errors
    /// libyaml's error; every later call returns it again.
    pub(crate) fn next(&mut self) -> Result<(Event, Mark, Mark), Error> {
        let ptr = self.raw.as_mut_ptr();
        let mut event = MaybeUninit::<unsafe_sys::yaml_event_t>::uninit();
        // SAFETY: the parser was initialised in `new`; libyaml must not be
        // called again after it failed (checked first); an event that
        // `yaml_parser_parse` filled is read by its type's union member and
        // deleted once copied.
        unsafe {
            if self.failed || unsafe_sys::yaml_parser_parse(ptr, event.as_mut_ptr()).fail {
                self.failed = true;
                return Err(error_of(&*ptr));
            }
            let event = event.as_mut_ptr();
            let converted = convert(&*event);
            let start = Mark::from((*event).start_mark);
            let end = Mark::from((*event).end_mark);
            unsafe_sys::yaml_event_delete(event);
            Ok((converted, start, end))
        }
    }

    /// Where each tag token ends, scanning tokens (not events) up to the
    /// end of the text or to the scanner's first error, returned with them.
    pub(crate) fn tag_ends(mut self) -> (Vec<Mark>, Option<Error>) {
        let ptr = self.raw.as_mut_ptr();
        let mut ends = Vec::new();
        loop {
            let mut token = MaybeUninit::<unsafe_sys::yaml_token_t>::uninit();
            // SAFETY: the parser was initialised in `new` and is used for
            // tokens only (it is consumed here); a token that
            // `yaml_parser_scan` filled is deleted once read.
            unsafe {
                if unsafe_sys::yaml_parser_scan(ptr, token.as_mut_ptr()).fail {
                    return (ends, Some(error_of(&*ptr)));
                }
                let token = token.as_mut_ptr();
                let kind = (*token).type_;
                if kind == unsafe_sys::YAML_TAG_TOKEN {
                    ends.push(Mark::from((*token).end_mark));
                }
                unsafe_sys::yaml_token_delete(token);
                if kind == unsafe_sys::YAML_STREAM_END_TOKEN {
                    return (ends, None);
                }
            }
        }
    }
}

impl Drop for Parser<'_> {
    fn drop(&mut self) {
        // SAFETY: initialised in `new` and not deleted before.
        unsafe { unsafe_sys::yaml_parser_delete(self.raw.as_mut_ptr()) }
    }
}

/// The error libyaml recorded in `parser`.
///
/// # Safety
/// `parser` is an initialised parser whose last call failed.
unsafe fn error_of(parser: &unsafe_sys::yaml_parser_t) -> Error {
    let stage = match parser.error {
        unsafe_sys::YAML_READER_ERROR => Stage::Reader,
        unsafe_sys::YAML_SCANNER_ERROR => Stage::Scanner,
        _ => Stage::Parser,
    };
    Error {
        stage,
        // SAFETY: libyaml's contexts are static NUL-terminated strings.
        context: unsafe { text(parser.context.cast()) },
        // SAFETY: libyaml's problems are static NUL-terminated strings.
        problem: unsafe { text(parser.problem.cast()) }
            .unwrap_or_else(|| "unknown problem parsing YAML content".into()),
        problem_mark: parser.problem_mark.into(),
        context_mark: parser.context_mark.into(),
    }
}

/// A NUL-terminated string of libyaml's, copied; `None` for a null pointer.
///
/// # Safety
/// `ptr` is null or points to a NUL-terminated string.
unsafe fn text(ptr: *const u8) -> Option<String> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: as the caller promises.
    let bytes = unsafe { CStr::from_ptr(ptr.cast()) }.to_bytes();
    Some(String::from_utf8_lossy(bytes).into_owned())
}

/// Copies an event's data.
///
/// # Safety
/// `event` was filled by `yaml_parser_parse`.
unsafe fn convert(event: &unsafe_sys::yaml_event_t) -> Event {
    // SAFETY (every block): the union member read is the one of the
    // event's type; its strings are NUL-terminated or null.
    match event.type_ {
        unsafe_sys::YAML_STREAM_START_EVENT => Event::StreamStart,
        unsafe_sys::YAML_DOCUMENT_START_EVENT => unsafe {
            let v = event.data.document_start.version_directive;
            Event::DocumentStart {
                version: (!v.is_null()).then(|| ((*v).major, (*v).minor)),
            }
        },
        unsafe_sys::YAML_DOCUMENT_END_EVENT => Event::DocumentEnd,
        unsafe_sys::YAML_ALIAS_EVENT => unsafe {
            Event::Alias(text(event.data.alias.anchor).unwrap_or_default())
        },
        unsafe_sys::YAML_SCALAR_EVENT => unsafe {
            let s = event.data.scalar;
            let bytes = std::slice::from_raw_parts(s.value, s.length as usize);
            Event::Scalar {
                value: String::from_utf8_lossy(bytes).into_owned(),
                style: match s.style {
                    unsafe_sys::YAML_SINGLE_QUOTED_SCALAR_STYLE => Style::SingleQuoted,
                    unsafe_sys::YAML_DOUBLE_QUOTED_SCALAR_STYLE => Style::DoubleQuoted,
                    unsafe_sys::YAML_LITERAL_SCALAR_STYLE => Style::Literal,
                    unsafe_sys::YAML_FOLDED_SCALAR_STYLE => Style::Folded,
                    _ => Style::Plain,
                },
                anchor: text(s.anchor),
                tag: text(s.tag),
            }
        },
        unsafe_sys::YAML_SEQUENCE_START_EVENT => unsafe {
            Event::SequenceStart {
                anchor: text(event.data.sequence_start.anchor),
                flow: event.data.sequence_start.style == unsafe_sys::YAML_FLOW_SEQUENCE_STYLE,
            }
        },
        unsafe_sys::YAML_SEQUENCE_END_EVENT => Event::SequenceEnd,
        unsafe_sys::YAML_MAPPING_START_EVENT => unsafe {
            Event::MappingStart {
                anchor: text(event.data.mapping_start.anchor),
                flow: event.data.mapping_start.style == unsafe_sys::YAML_FLOW_MAPPING_STYLE,
            }
        },
        unsafe_sys::YAML_MAPPING_END_EVENT => Event::MappingEnd,
        _ => Event::StreamEnd,
    }
}
