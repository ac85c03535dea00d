//! Parsing templates and rewriting their syntax trees so that gotmpl runs
//! them with Go's and Helm's semantics:
//!
//! - every function call `f a b` becomes `__call <site> a b`, so that the
//!   call is checked like Go checks it and a failure names its position
//!   (gotmpl's runtime errors carry none);
//! - every field chain `.a.b`, `$x.a`, `(f).a` becomes `__field <site> ...`
//!   (Go's nil rules, Helm's methods such as `.Files.Get`, positions);
//! - what an action prints goes through `__print` (Go's formatting);
//! - `range` values go through `__range`, `if`/`with`/`template` values and
//!   the variables `and`/`or` judge through `__resolve` (the current version
//!   of a shared map, see `maps`);
//! - what Go rejects when parsing (an unknown function or variable) is
//!   rejected here, with the line.

use std::collections::HashSet;
use std::sync::Arc;

use gotmpl::TemplateError;
use gotmpl::parse::{
    BranchNode, CommandNode, DefineNode, Expr, ListNode, Node, Number, Parser, PipeNode, Pos,
    SmolStr,
};

use super::functions;
use super::gofmt::{format_float, go_quote};
use super::state::{ArgInfo, Loc, Origin, Site, SiteKind, State};

/// A template that does not parse, with its 1-based line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ParseError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

/// A parsed file: its top-level tree and its `define`s.
pub(crate) struct Parsed {
    pub tree: ListNode,
    pub defines: Vec<DefineNode>,
}

fn parse_error(file: &str, e: TemplateError) -> ParseError {
    match e {
        TemplateError::Parse { line, message, .. } | TemplateError::Lex { line, message, .. } => {
            ParseError {
                file: file.to_owned(),
                line,
                message,
            }
        }
        other => ParseError {
            file: file.to_owned(),
            line: 1,
            message: other.to_string(),
        },
    }
}

/// Parses one template source; `file` names it in errors.
pub(crate) fn parse(file: &str, src: &str) -> Result<Parsed, ParseError> {
    let src = super::source::as_go_reads_it(src);
    let (tree, defines) = Parser::with_name(Some(file), &src, "{{", "}}")
        .and_then(Parser::parse)
        .map_err(|e| parse_error(file, e))?;
    let mut seen = HashSet::new();
    for d in defines.iter().filter(|d| !d.body.is_empty_tree()) {
        if !seen.insert(d.name.clone()) {
            return Err(ParseError {
                file: file.to_owned(),
                line: d.pos.line,
                message: format!(
                    "template: multiple definition of template {:?}",
                    d.name.as_str()
                ),
            });
        }
    }
    Ok(Parsed { tree, defines })
}

/// Rewrites one tree (a file's top level, or a `define` body).
pub(crate) struct Rewriter<'a> {
    pub state: &'a State,
    pub file: Arc<str>,
    pub src: &'a str,
    pub exec: Arc<str>,
    /// Every template name `{{ template }}` may use.
    pub names: &'a HashSet<String>,
    vars: Vec<(SmolStr, bool)>,
    /// One entry per construct that binds dot: whether it is a `range`.
    dots: Vec<bool>,
}

type R<T> = Result<T, ParseError>;

impl<'a> Rewriter<'a> {
    pub(crate) fn new(
        state: &'a State,
        file: &str,
        src: &'a str,
        exec: &str,
        names: &'a HashSet<String>,
    ) -> Self {
        Rewriter {
            state,
            file: file.into(),
            src,
            exec: exec.into(),
            names,
            vars: vec![(SmolStr::new("$"), false)],
            dots: vec![false],
        }
    }

    fn loc(&self, pos: Pos) -> Loc {
        let end = pos.offset.min(self.src.len());
        let col = match self.src[..end].rfind('\n') {
            Some(i) => end - (i + 1),
            None => end,
        };
        Loc {
            file: self.file.clone(),
            line: pos.line,
            col,
        }
    }

    fn err(&self, pos: Pos, message: String) -> ParseError {
        ParseError {
            file: self.file.to_string(),
            line: pos.line,
            message,
        }
    }

    fn site(&self, pos: Pos, context: String, kind: SiteKind) -> Expr {
        let loc = self.loc(pos);
        let id = self.state.add_site(Site {
            loc,
            exec: self.exec.clone(),
            context,
            kind,
        });
        Expr::Number(pos, Number::Int(id))
    }

    fn cmd(pos: Pos, name: &str, mut rest: Vec<Expr>) -> CommandNode {
        let mut args = vec![Expr::Identifier(pos, SmolStr::new(name))];
        args.append(&mut rest);
        CommandNode { pos, args }
    }

    /// A pipeline of `commands` that declares nothing.
    fn pipeline(pos: Pos, commands: Vec<CommandNode>) -> PipeNode {
        PipeNode {
            pos,
            decl: Vec::new(),
            commands,
            is_assign: false,
        }
    }

    fn pipe_of(pos: Pos, cmd: CommandNode) -> Expr {
        Expr::Pipe(pos, Self::pipeline(pos, vec![cmd]))
    }

    /// An action that runs one command and prints its result.
    fn action(pos: Pos, cmd: CommandNode) -> Node {
        Node::Action(gotmpl::parse::ActionNode {
            pos,
            pipe: Self::pipeline(pos, vec![cmd]),
        })
    }

    pub(crate) fn list(&mut self, list: ListNode) -> R<ListNode> {
        let mut nodes = Vec::with_capacity(list.nodes.len());
        for node in list.nodes {
            nodes.push(self.node(node)?);
        }
        Ok(ListNode {
            pos: list.pos,
            nodes,
        })
    }

    fn node(&mut self, node: Node) -> R<Node> {
        Ok(match node {
            Node::Action(mut a) => {
                let prints = a.pipe.decl.is_empty();
                let context = pipe_string(&a.pipe);
                a.pipe = self.pipe(a.pipe, false)?;
                if prints {
                    let pos = a.pipe.pos;
                    let site = self.site(pos, context, SiteKind::Print);
                    a.pipe.commands.push(Self::cmd(pos, "__print", vec![site]));
                }
                Node::Action(a)
            }
            Node::If(b) => Node::If(self.branch(b, BranchKind::If)?),
            Node::With(b) => Node::With(self.branch(b, BranchKind::With)?),
            Node::Range(b) => Node::Range(self.branch(b, BranchKind::Range)?),
            Node::Template(mut t) => {
                if !self.names.contains(t.name.as_str()) {
                    let context = format!("{{{{template {:?}}}}}", t.name.as_str());
                    let site = self.site(
                        t.pos,
                        context,
                        SiteKind::Fail(format!("template {:?} not defined", t.name.as_str())),
                    );
                    return Ok(Self::action(t.pos, Self::cmd(t.pos, "__fail", vec![site])));
                }
                if let Some(p) = t.pipe.take() {
                    let mut p = self.pipe(p, false)?;
                    p.commands.push(Self::cmd(p.pos, "__resolve", Vec::new()));
                    t.pipe = Some(p);
                }
                Node::Template(t)
            }
            Node::List(l) => Node::List(self.list(l)?),
            other => other,
        })
    }

    fn branch(&mut self, b: BranchNode, kind: BranchKind) -> R<BranchNode> {
        let mark = self.vars.len();
        // Go reports a value it cannot range over at the pipeline's last node.
        let range_at = match b.pipe.commands.last().and_then(|c| c.args.first()) {
            Some(
                e @ (Expr::Identifier(..) | Expr::Field(..) | Expr::Variable(..) | Expr::Chain(..)),
            ) => (field_pos(e), expr_string(e)),
            _ => (b.pipe.pos, pipe_string(&b.pipe)),
        };
        let mut pipe = self.pipe(b.pipe, kind == BranchKind::Range)?;
        let pos = pipe.pos;
        if kind == BranchKind::Range {
            let site = self.site(range_at.0, range_at.1, SiteKind::Range);
            pipe.commands.push(Self::cmd(pos, "__range", vec![site]));
        } else {
            pipe.commands.push(Self::cmd(pos, "__resolve", Vec::new()));
        }
        let binds_dot = kind != BranchKind::If;
        if binds_dot {
            self.dots.push(kind == BranchKind::Range);
        }
        let body = self.list(b.body);
        if binds_dot {
            self.dots.pop();
        }
        let mut body = body?;
        if kind == BranchKind::Range {
            // Every iteration is counted against the render's budget (time,
            // and the text it prints: see `budget`).
            let site = self.site(b.pos, "range".into(), SiteKind::Tick(text_bytes(&body)));
            body.nodes.insert(
                0,
                Self::action(b.pos, Self::cmd(b.pos, "__tick", vec![site])),
            );
        }
        let else_body = match b.else_body {
            Some(e) => Some(self.list(e)?),
            None => None,
        };
        self.vars.truncate(mark);
        Ok(BranchNode {
            pos: b.pos,
            pipe,
            body,
            else_body,
        })
    }

    fn pipe(&mut self, p: PipeNode, range_vars: bool) -> R<PipeNode> {
        let mut commands = Vec::with_capacity(p.commands.len());
        for (i, c) in p.commands.into_iter().enumerate() {
            commands.push(self.command(c, i > 0)?);
        }
        for name in &p.decl {
            if p.is_assign {
                self.check_var(p.pos, name)?;
            } else {
                self.vars.push((name.clone(), range_vars));
            }
        }
        Ok(PipeNode {
            pos: p.pos,
            decl: p.decl,
            commands,
            is_assign: p.is_assign,
        })
    }

    fn check_var(&self, pos: Pos, name: &str) -> R<bool> {
        match self.vars.iter().rev().find(|(n, _)| n == name) {
            Some((_, range)) => Ok(*range),
            None => Err(self.err(pos, format!("undefined variable {name:?}"))),
        }
    }

    fn arg_info(&self, e: &Expr) -> ArgInfo {
        let origin = match e {
            Expr::Dot(_) | Expr::Field(..) => Origin::Field,
            Expr::Variable(_, _, f) if !f.is_empty() => Origin::Field,
            Expr::Chain(..) => Origin::Field,
            Expr::String(..) => Origin::StrLit,
            Expr::Number(..) => Origin::NumLit,
            Expr::Bool(..) => Origin::BoolLit,
            Expr::Nil(_) => Origin::NilLit,
            _ => Origin::Value,
        };
        ArgInfo {
            loc: self.loc(field_pos(e)),
            context: expr_string(e),
            origin,
        }
    }

    fn command(&mut self, cmd: CommandNode, piped: bool) -> R<CommandNode> {
        let mut args = cmd.args.into_iter();
        let Some(first) = args.next() else {
            return Ok(CommandNode {
                pos: cmd.pos,
                args: Vec::new(),
            });
        };
        let rest: Vec<Expr> = args.collect();
        let infos: Vec<ArgInfo> = rest.iter().map(|e| self.arg_info(e)).collect();
        let mut rewritten_rest = Vec::with_capacity(rest.len());
        let context = command_string(&first, &rest);
        let head: Vec<Expr> = match first {
            Expr::Identifier(pos, name) if name == "and" || name == "or" => {
                // gotmpl's own `and`/`or` (lazy, as Go's) judge their
                // arguments' truth: a variable holding a map must be read at
                // its current version.
                let mut all = vec![Expr::Identifier(pos, name)];
                for e in rest {
                    let e = self.arg(e)?;
                    all.push(match e {
                        Expr::Variable(p, ..) | Expr::Dot(p) => Expr::Pipe(
                            p,
                            Self::pipeline(
                                p,
                                vec![
                                    CommandNode {
                                        pos: p,
                                        args: vec![e],
                                    },
                                    Self::cmd(p, "__resolve", Vec::new()),
                                ],
                            ),
                        ),
                        other => other,
                    });
                }
                return Ok(CommandNode {
                    pos: cmd.pos,
                    args: all,
                });
            }
            Expr::Identifier(pos, name) => {
                let func = functions::lookup(&name).ok_or_else(|| {
                    self.err(pos, format!("function {:?} not defined", name.as_str()))
                })?;
                let ident = self.loc(pos);
                let site = self.site(
                    cmd.pos,
                    context,
                    SiteKind::Call {
                        func,
                        args: infos,
                        piped,
                        ident,
                    },
                );
                vec![Expr::Identifier(pos, SmolStr::new("__call")), site]
            }
            e @ (Expr::Field(..) | Expr::Chain(..)) => self.field_head(e)?,
            Expr::Variable(pos, name, fields) if !fields.is_empty() => {
                self.field_head(Expr::Variable(pos, name, fields))?
            }
            Expr::Variable(pos, name, fields) => {
                self.check_var(pos, &name)?;
                vec![Expr::Variable(pos, name, fields)]
            }
            Expr::Pipe(pos, p) => vec![Expr::Pipe(pos, self.pipe(p, false)?)],
            other => vec![other],
        };
        for e in rest {
            rewritten_rest.push(self.arg(e)?);
        }
        let mut all = head;
        all.extend(rewritten_rest);
        Ok(CommandNode {
            pos: cmd.pos,
            args: all,
        })
    }

    /// `__field <site> <receiver>` for a field chain at the head of a command.
    fn field_head(&mut self, e: Expr) -> R<Vec<Expr>> {
        let pos = field_pos(&e);
        let context = expr_string(&e);
        let (base, fields, base_nil_errors) = match e {
            Expr::Field(p, fields) => (
                Expr::Dot(p),
                fields,
                self.dots.last().copied().unwrap_or(false),
            ),
            Expr::Variable(p, name, fields) => {
                let range = self.check_var(p, &name)?;
                (Expr::Variable(p, name, Vec::new()), fields, range)
            }
            Expr::Chain(_, inner, fields) => (self.arg(*inner)?, fields, false),
            other => return Ok(vec![other]),
        };
        let fields: Vec<String> = fields.iter().map(|f| f.to_string()).collect();
        let site = self.site(
            pos,
            context,
            SiteKind::Field {
                fields,
                base_nil_errors,
            },
        );
        Ok(vec![
            Expr::Identifier(pos, SmolStr::new("__field")),
            site,
            base,
        ])
    }

    fn arg(&mut self, e: Expr) -> R<Expr> {
        Ok(match e {
            Expr::Identifier(pos, name) if name == "and" || name == "or" => {
                Expr::Identifier(pos, name)
            }
            Expr::Identifier(pos, name) => {
                let func = functions::lookup(&name).ok_or_else(|| {
                    self.err(pos, format!("function {:?} not defined", name.as_str()))
                })?;
                let ident = self.loc(pos);
                let site = self.site(
                    pos,
                    name.to_string(),
                    SiteKind::Call {
                        func,
                        args: Vec::new(),
                        piped: false,
                        ident,
                    },
                );
                Self::pipe_of(
                    pos,
                    CommandNode {
                        pos,
                        args: vec![Expr::Identifier(pos, SmolStr::new("__call")), site],
                    },
                )
            }
            e @ (Expr::Field(..) | Expr::Chain(..)) => {
                let pos = e.pos();
                Self::pipe_of(
                    pos,
                    CommandNode {
                        pos,
                        args: self.field_head(e)?,
                    },
                )
            }
            Expr::Variable(pos, name, fields) if !fields.is_empty() => Self::pipe_of(
                pos,
                CommandNode {
                    pos,
                    args: self.field_head(Expr::Variable(pos, name, fields))?,
                },
            ),
            Expr::Variable(pos, name, fields) => {
                self.check_var(pos, &name)?;
                Expr::Variable(pos, name, fields)
            }
            Expr::Pipe(pos, p) => Expr::Pipe(pos, self.pipe(p, false)?),
            other => other,
        })
    }
}

/// The literal text of `list` and of the branches in it, not counting nested
/// `range` bodies (their iterations count their own).
fn text_bytes(list: &ListNode) -> usize {
    list.nodes
        .iter()
        .map(|n| match n {
            Node::Text(t) => t.text.len(),
            Node::List(l) => text_bytes(l),
            Node::If(b) | Node::With(b) => {
                text_bytes(&b.body) + b.else_body.as_ref().map_or(0, text_bytes)
            }
            _ => 0,
        })
        .sum()
}

#[derive(PartialEq, Clone, Copy)]
enum BranchKind {
    If,
    With,
    Range,
}

/// Where Go places a field chain: at its second field when it has several
/// (Go's parser positions the chain there), else at its start.
fn field_pos(e: &Expr) -> Pos {
    match e {
        Expr::Field(p, fields) if fields.len() > 1 => {
            Pos::new(p.offset + 1 + fields[0].len(), p.line)
        }
        Expr::Variable(p, name, fields) if !fields.is_empty() => {
            Pos::new(p.offset + name.len(), p.line)
        }
        other => other.pos(),
    }
}

/// Go's `String()` of an expression.
pub(crate) fn expr_string(e: &Expr) -> String {
    match e {
        Expr::Dot(_) => ".".into(),
        Expr::Field(_, f) => f.iter().map(|x| format!(".{x}")).collect(),
        Expr::Variable(_, n, f) => format!(
            "{n}{}",
            f.iter().map(|x| format!(".{x}")).collect::<String>()
        ),
        Expr::Identifier(_, n) => n.to_string(),
        Expr::String(_, s) => go_quote(s),
        Expr::Number(_, Number::Int(i)) => i.to_string(),
        Expr::Number(_, Number::Uint(u)) => u.to_string(),
        Expr::Number(_, Number::Float(f)) => format_float(*f, 'g', None),
        Expr::Bool(_, b) => b.to_string(),
        Expr::Nil(_) => "nil".into(),
        Expr::Pipe(_, p) => format!("({})", pipe_string(p)),
        Expr::Chain(_, inner, f) => format!(
            "{}{}",
            expr_string(inner),
            f.iter().map(|x| format!(".{x}")).collect::<String>()
        ),
    }
}

fn command_string(first: &Expr, rest: &[Expr]) -> String {
    std::iter::once(first)
        .chain(rest)
        .map(expr_string)
        .collect::<Vec<_>>()
        .join(" ")
}

fn pipe_string(p: &PipeNode) -> String {
    let cmds = p
        .commands
        .iter()
        .filter(|c| !matches!(c.args.first(), Some(Expr::Identifier(_, n)) if n.starts_with("__")))
        .map(|c| match c.args.split_first() {
            Some((f, r)) => command_string(f, r),
            None => String::new(),
        })
        .collect::<Vec<_>>()
        .join(" | ");
    if p.decl.is_empty() {
        cmds
    } else {
        format!(
            "{} {} {cmds}",
            p.decl.join(", "),
            if p.is_assign { "=" } else { ":=" }
        )
    }
}
