//! ACL, as Redis 7.0's acl.c: users and their selectors, the permission
//! check on the command path, the ACL log and the ACL file.
//!
//! Users are global and shared by every shard thread. The registry keeps
//! each user as an immutable `Arc<User>` behind a lock that only ACL
//! commands, AUTH and a connection's refresh take; a change publishes a new
//! snapshot and bumps `generation`. A connection holds its user's snapshot
//! (`ClientAcl`) and, on the command path, compares one relaxed atomic load
//! with the generation it saw: nothing else while nothing changed, and no
//! check at all for a user who may run everything (the default user).

pub mod keys;
pub mod sha256;

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock};

use crate::commands::command::CATEGORIES;
use crate::commands::{flags, CommandTable};
use crate::config::glob_match;

/// Key permissions of a key pattern (`%R~`, `%W~`, `~` for both).
pub const PERM_READ: u8 = 1;
pub const PERM_WRITE: u8 = 2;
pub const PERM_ALL: u8 = PERM_READ | PERM_WRITE;

/// Which arguments of a command are channels (Redis's `ACLDoesCommandHaveChannels`).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Chan {
    None,
    /// PUBLISH, SPUBLISH: the first argument.
    First,
    /// SUBSCRIBE, SSUBSCRIBE: every argument, matched against the patterns.
    All,
    /// PSUBSCRIBE: every argument, compared literally with the patterns.
    AllLiteral,
}

/// What the ACL needs of the command table, computed once.
struct Catalog {
    /// By command id: the category bits (bit i: `CATEGORIES[i]`).
    cats: Vec<u32>,
    /// By command id: its subcommands.
    subs: Vec<Vec<usize>>,
    /// By command id: whether it is a subcommand.
    is_sub: Vec<bool>,
    /// Top-level commands, in table order.
    top: Vec<usize>,
    chans: Vec<Chan>,
    words: usize,
}

fn catalog() -> &'static Catalog {
    static CAT: OnceLock<Catalog> = OnceLock::new();
    CAT.get_or_init(|| {
        let t = CommandTable::get();
        let n = t.specs.len();
        let mut cats = vec![0u32; n];
        let mut subs = vec![Vec::new(); n];
        let mut is_sub = vec![false; n];
        let mut chans = vec![Chan::None; n];
        for (id, spec) in t.specs.iter().enumerate() {
            for c in crate::commands::command::acl_categories(spec) {
                if let Some(i) = CATEGORIES.iter().position(|x| *x == c) {
                    cats[id] |= 1 << i;
                }
            }
            is_sub[id] = spec.name.contains('|');
            chans[id] = match spec.name {
                "publish" | "spublish" => Chan::First,
                "subscribe" | "ssubscribe" => Chan::All,
                "psubscribe" => Chan::AllLiteral,
                _ => Chan::None,
            };
        }
        let top: Vec<usize> = t.top_level().collect();
        for &id in &top {
            subs[id] = t.subcommands_of(t.specs[id].name);
        }
        Catalog { cats, subs, is_sub, top, chans, words: n.div_ceil(64) }
    })
}

/// The bit of category `name` (case-insensitive), as `ACLGetCommandCategoryFlagByName`.
fn category_bit(name: &[u8]) -> Option<u32> {
    CATEGORIES.iter().position(|c| c.as_bytes().eq_ignore_ascii_case(name)).map(|i| 1 << i)
}

/// A command by name as ACL rules name it (`get`, `config|get`), case-insensitive.
fn lookup_command(name: &[u8]) -> Option<usize> {
    let t = CommandTable::get();
    match name.iter().position(|&b| b == b'|') {
        None => t.lookup(name),
        Some(i) => {
            let (c, sub) = (&name[..i], &name[i + 1..]);
            if sub.contains(&b'|') {
                return None;
            }
            let id = t.lookup(c)?;
            if !t.is_container(id) {
                return None;
            }
            t.lookup_sub(t.specs[id].name, sub)
        }
    }
}

/// Why `ACLSetUser` refused an operation (`ACLSetUserStringError`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RuleError {
    Unknown,
    Syntax,
    KeysAfterAll,
    ChannelsAfterAll,
    NoSuchPassword,
    BadHash,
    Duplicate,
    FirstArgOfSub,
}

impl RuleError {
    pub fn text(self) -> &'static str {
        match self {
            RuleError::Unknown => "Unknown command or category name in ACL",
            RuleError::Syntax => "Syntax error",
            RuleError::KeysAfterAll => "Adding a pattern after the * pattern (or the 'allkeys' flag) is not valid and does not have any effect. Try 'resetkeys' to start with an empty list of patterns",
            RuleError::ChannelsAfterAll => "Adding a pattern after the * pattern (or the 'allchannels' flag) is not valid and does not have any effect. Try 'resetchannels' to start with an empty list of channels",
            RuleError::NoSuchPassword => "The password you are trying to remove from the user does not exist",
            RuleError::BadHash => "The password hash must be exactly 64 characters and contain only lowercase hexadecimal characters",
            RuleError::Duplicate => "Duplicate user found. A user can only be defined once in config files",
            RuleError::FirstArgOfSub => "Allowing first-arg of a subcommand is not supported",
        }
    }
}

/// Redis's `ACLStringHasSpaces`.
pub fn has_spaces(s: &[u8]) -> bool {
    s.iter().any(|&c| c == 0 || c.is_ascii_whitespace() || c == 0x0b)
}

/// One selector: the root one (rules outside parentheses) or a `(...)` one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector {
    root: bool,
    allkeys: bool,
    allchannels: bool,
    /// Every command bit set (cleared when any bit is cleared).
    allcommands: bool,
    /// `+@all` was applied: future commands too (Redis's reserved bit).
    future: bool,
    allowed: Vec<u64>,
    /// Commands allowed with given first arguments only (`+select|0`).
    firstargs: Vec<(usize, Vec<Vec<u8>>)>,
    keys: Vec<(Vec<u8>, u8)>,
    channels: Vec<Vec<u8>>,
}

impl Selector {
    fn new(root: bool, pubsub_all: bool) -> Selector {
        Selector {
            root,
            allkeys: false,
            allchannels: pubsub_all,
            allcommands: false,
            future: false,
            allowed: vec![0; catalog().words],
            firstargs: Vec::new(),
            keys: Vec::new(),
            channels: Vec::new(),
        }
    }

    #[inline]
    fn bit(&self, id: usize) -> bool {
        self.allowed[id / 64] & (1 << (id % 64)) != 0
    }

    fn set_bit(&mut self, id: usize, on: bool) {
        if on {
            self.allowed[id / 64] |= 1 << (id % 64);
        } else {
            self.allowed[id / 64] &= !(1 << (id % 64));
            self.allcommands = false;
        }
    }

    /// `ACLChangeSelectorPerm`: the command and its subcommands.
    fn change_perm(&mut self, id: usize, on: bool) {
        self.set_bit(id, on);
        self.firstargs.retain(|(c, _)| *c != id);
        for &s in &catalog().subs[id] {
            self.set_bit(s, on);
        }
    }

    fn change_category(&mut self, bit: u32, on: bool) {
        let cat = catalog();
        for &id in &cat.top {
            if cat.cats[id] & bit != 0 {
                self.change_perm(id, on);
            }
            for &s in &cat.subs[id] {
                if cat.cats[s] & bit != 0 {
                    self.change_perm(s, on);
                }
            }
        }
    }

    fn all_commands(&mut self, on: bool) {
        let fill = if on { u64::MAX } else { 0 };
        self.allowed.iter_mut().for_each(|w| *w = fill);
        self.allcommands = on;
        self.future = on;
        self.firstargs.clear();
    }

    /// `ACLSetSelector`: one rule of the selector.
    fn apply(&mut self, op: &[u8]) -> Result<(), RuleError> {
        let is = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if is("allkeys") || op == b"~*" {
            self.allkeys = true;
            self.keys.clear();
        } else if is("resetkeys") {
            self.allkeys = false;
            self.keys.clear();
        } else if is("allchannels") || op == b"&*" {
            self.allchannels = true;
            self.channels.clear();
        } else if is("resetchannels") {
            self.allchannels = false;
            self.channels.clear();
        } else if is("allcommands") || is("+@all") {
            self.all_commands(true);
        } else if is("nocommands") || is("-@all") {
            self.all_commands(false);
        } else if op[0] == b'~' || op[0] == b'%' {
            if self.allkeys {
                return Err(RuleError::KeysAfterAll);
            }
            let mut perm = 0;
            let mut offset = 1;
            if op[0] == b'%' {
                loop {
                    if offset >= op.len() {
                        break;
                    }
                    let c = op[offset].to_ascii_uppercase();
                    if c == b'R' && perm & PERM_READ == 0 {
                        perm |= PERM_READ;
                    } else if c == b'W' && perm & PERM_WRITE == 0 {
                        perm |= PERM_WRITE;
                    } else if op[offset] == b'~' {
                        offset += 1;
                        break;
                    } else {
                        return Err(RuleError::Syntax);
                    }
                    offset += 1;
                }
            } else {
                perm = PERM_ALL;
            }
            let pat = &op[offset..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            match self.keys.iter_mut().find(|(p, _)| p == pat) {
                Some(k) => k.1 |= perm,
                None => self.keys.push((pat.to_vec(), perm)),
            }
            self.allkeys = false;
        } else if op[0] == b'&' {
            if self.allchannels {
                return Err(RuleError::ChannelsAfterAll);
            }
            let pat = &op[1..];
            if has_spaces(pat) {
                return Err(RuleError::Syntax);
            }
            if !self.channels.iter().any(|c| c == pat) {
                self.channels.push(pat.to_vec());
            }
            self.allchannels = false;
        } else if op[0] == b'+' && op.get(1) != Some(&b'@') {
            let name = &op[1..];
            match name.iter().rposition(|&b| b == b'|') {
                None => {
                    let id = lookup_command(name).ok_or(RuleError::Unknown)?;
                    self.change_perm(id, true);
                }
                Some(i) => {
                    let (cmd, sub) = (&name[..i], &name[i + 1..]);
                    let id = lookup_command(cmd).ok_or(RuleError::Unknown)?;
                    if catalog().is_sub[id] {
                        return Err(RuleError::FirstArgOfSub);
                    }
                    if sub.is_empty() {
                        return Err(RuleError::Syntax);
                    }
                    if CommandTable::get().is_container(id) {
                        let sid = lookup_command(name).ok_or(RuleError::Unknown)?;
                        self.change_perm(sid, true);
                    } else {
                        crate::warning!(
                            "Deprecation warning: Allowing a first arg of an otherwise blocked command is a misuse of ACL and may get disabled in the future (offender: +{})",
                            String::from_utf8_lossy(name)
                        );
                        let lower = sub.to_ascii_lowercase();
                        match self.firstargs.iter_mut().find(|(c, _)| *c == id) {
                            Some((_, v)) => {
                                if !v.iter().any(|a| a.eq_ignore_ascii_case(&lower)) {
                                    v.push(sub.to_vec());
                                }
                            }
                            None => self.firstargs.push((id, vec![sub.to_vec()])),
                        }
                    }
                }
            }
        } else if op[0] == b'-' && op.get(1) != Some(&b'@') {
            let id = lookup_command(&op[1..]).ok_or(RuleError::Unknown)?;
            self.change_perm(id, false);
        } else if (op[0] == b'+' || op[0] == b'-') && op.get(1) == Some(&b'@') {
            let bit = category_bit(&op[2..]).ok_or(RuleError::Unknown)?;
            self.change_category(bit, op[0] == b'+');
        } else {
            return Err(RuleError::Syntax);
        }
        Ok(())
    }

    /// `ACLDescribeSelectorCommandRules`: `+@all`/`-@all`, the categories
    /// that fit best, then single commands (in table order).
    fn describe_commands(&self) -> String {
        let cat = catalog();
        let additive = !self.future;
        let mut rules = String::from(if additive { "-@all " } else { "+@all " });
        let mut fake = Selector::new(false, false);
        fake.all_commands(!additive);
        let mut temp = Selector::new(false, false);
        temp.allowed = self.allowed.clone();
        let mut applied = [false; 32];
        loop {
            let mut best = None;
            let (mut mindiff, mut maxsame) = (usize::MAX, 0);
            for (j, _) in CATEGORIES.iter().enumerate() {
                if applied[j] {
                    continue;
                }
                let (on, off) = temp.count_category(1 << j);
                let (diff, same) = if additive { (off, on) } else { (on, off) };
                if same > diff && (diff < mindiff || (diff == mindiff && same > maxsame)) {
                    best = Some(j);
                    mindiff = diff;
                    maxsame = same;
                }
            }
            let Some(j) = best else { break };
            fake.change_category(1 << j, additive);
            temp.change_category(1 << j, !additive);
            rules.push_str(if additive { "+@" } else { "-@" });
            rules.push_str(CATEGORIES[j]);
            rules.push(' ');
            applied[j] = true;
        }
        let table = CommandTable::get();
        let single = |id: usize, fake: &mut Selector, rules: &mut String| {
            let user = self.bit(id);
            if user != fake.bit(id) {
                rules.push(if user { '+' } else { '-' });
                rules.push_str(table.specs[id].name);
                rules.push(' ');
                fake.change_perm(id, user);
            }
        };
        for &id in &cat.top {
            single(id, &mut fake, &mut rules);
            for &s in &cat.subs[id] {
                single(s, &mut fake, &mut rules);
            }
            if !self.bit(id) {
                if let Some((_, args)) = self.firstargs.iter().find(|(c, _)| *c == id) {
                    for a in args {
                        rules.push('+');
                        rules.push_str(table.specs[id].name);
                        rules.push('|');
                        rules.push_str(&String::from_utf8_lossy(a));
                        rules.push(' ');
                    }
                }
            }
        }
        rules.pop();
        rules
    }

    /// Commands of category `bit` allowed and denied (subcommands counted).
    fn count_category(&self, bit: u32) -> (usize, usize) {
        let cat = catalog();
        let (mut on, mut off) = (0, 0);
        for &id in &cat.top {
            for c in std::iter::once(id).chain(cat.subs[id].iter().copied()) {
                if cat.cats[c] & bit != 0 {
                    if self.bit(c) {
                        on += 1;
                    } else {
                        off += 1;
                    }
                }
            }
        }
        (on, off)
    }

    fn key_patterns(&self) -> String {
        if self.allkeys {
            return "~*".into();
        }
        let v: Vec<String> = self.keys.iter().map(|(p, f)| pattern_string(p, *f)).collect();
        v.join(" ")
    }

    fn channel_patterns(&self) -> String {
        if self.allchannels {
            return "&*".into();
        }
        let v: Vec<String> = self.channels.iter().map(|c| format!("&{}", String::from_utf8_lossy(c))).collect();
        v.join(" ")
    }

    /// `ACLDescribeSelector`.
    fn describe(&self) -> String {
        let mut res = String::new();
        if self.allkeys {
            res.push_str("~* ");
        } else {
            for (p, f) in &self.keys {
                res.push_str(&pattern_string(p, *f));
                res.push(' ');
            }
        }
        if self.allchannels {
            res.push_str("&* ");
        } else {
            res.push_str("resetchannels ");
            for c in &self.channels {
                res.push('&');
                res.push_str(&String::from_utf8_lossy(c));
                res.push(' ');
            }
        }
        res.push_str(&self.describe_commands());
        res
    }

    fn may_run_everything(&self) -> bool {
        self.allcommands && self.allkeys && self.allchannels
    }

    fn key_allowed(&self, key: &[u8], keyspec_perm: u8) -> bool {
        self.allkeys || self.keys.iter().any(|(p, f)| f & keyspec_perm == keyspec_perm && glob_match(p, key, false))
    }

    fn channel_allowed(&self, channel: &[u8], literal: bool) -> bool {
        self.allchannels || self.channels.iter().any(|p| if literal { p == channel } else { glob_match(p, channel, false) })
    }

    /// `ACLSelectorCheckCmd`.
    fn check(&self, id: usize, args: &[&[u8]], keys: &mut Option<Vec<(usize, u8)>>) -> Result<(), Denied> {
        let spec = &CommandTable::get().specs[id];
        if !self.allcommands && spec.flags & flags::NO_AUTH == 0 && !self.bit(id) {
            let idx = if catalog().is_sub[id] { 2 } else { 1 };
            let ok = args.len() >= 2
                && self
                    .firstargs
                    .iter()
                    .find(|(c, _)| *c == id)
                    .is_some_and(|(_, v)| args.get(idx).is_some_and(|a| v.iter().any(|x| x.eq_ignore_ascii_case(a))));
            if !ok {
                return Err(Denied::Command);
            }
        }
        if !self.allkeys {
            let keys = keys.get_or_insert_with(|| keys::key_perms(id, args));
            for &(pos, perm) in keys.iter() {
                if !self.key_allowed(args[pos], perm) {
                    return Err(Denied::Key(pos));
                }
            }
        }
        if !self.allchannels {
            let (from, to, literal) = match catalog().chans[id] {
                Chan::None => return Ok(()),
                Chan::First => (1, 2.min(args.len()), false),
                Chan::All => (1, args.len(), false),
                Chan::AllLiteral => (1, args.len(), true),
            };
            for (j, ch) in args.iter().enumerate().take(to).skip(from) {
                if !self.channel_allowed(ch, literal) {
                    return Err(Denied::Channel(j));
                }
            }
        }
        Ok(())
    }
}

fn pattern_string(p: &[u8], f: u8) -> String {
    let prefix = match f {
        PERM_READ => "%R~",
        PERM_WRITE => "%W~",
        _ => "~",
    };
    format!("{}{}", prefix, String::from_utf8_lossy(p))
}

/// Why a command was refused; the position is the argument's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Command,
    Key(usize),
    Channel(usize),
}

impl Denied {
    /// Redis's ACL_DENIED_* order (the most relevant error wins).
    fn rank(self) -> (u8, usize) {
        match self {
            Denied::Command => (1, 0),
            Denied::Key(p) => (2, p),
            Denied::Channel(p) => (4, p),
        }
    }
    /// The reply `processCommand` gives.
    pub fn reply(self, name: &str) -> String {
        match self {
            Denied::Command => format!("NOPERM this user has no permissions to run the '{}' command", name),
            Denied::Key(_) => "NOPERM this user has no permissions to access one of the keys used as arguments".into(),
            Denied::Channel(_) => "NOPERM this user has no permissions to access one of the channels used as arguments".into(),
        }
    }
    /// The reason EXEC's re-check of a queued command names (Redis's
    /// `execCommand`, rules changed after the command was queued).
    pub fn exec_reason(self) -> &'static str {
        match self {
            Denied::Command => "no permission to execute the command or subcommand",
            Denied::Key(_) => "no permission to touch the specified keys",
            Denied::Channel(_) => "no permission to access one of the channels used as arguments",
        }
    }
    /// The error a script's `redis.call` gets.
    pub fn script_reply(self) -> &'static str {
        match self {
            Denied::Command => "The user executing the script can't run this command or subcommand",
            Denied::Key(_) => "The user executing the script can't access at least one of the keys mentioned in the command arguments",
            Denied::Channel(_) => "The user executing the script can't publish to the channel mentioned in the command",
        }
    }
    /// ACL LOG's `reason`.
    pub fn reason(self) -> Reason {
        match self {
            Denied::Command => Reason::Command,
            Denied::Key(_) => Reason::Key,
            Denied::Channel(_) => Reason::Channel,
        }
    }
    /// The argument the log names (key or channel).
    pub fn pos(self) -> Option<usize> {
        match self {
            Denied::Command => None,
            Denied::Key(p) | Denied::Channel(p) => Some(p),
        }
    }
}

/// A user, as one immutable snapshot.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub name: Vec<u8>,
    /// This user's incarnation: a user deleted (or replaced by ACL LOAD)
    /// and created again is another user to the connections of the first.
    pub uid: u64,
    enabled: bool,
    nopass: bool,
    /// None: no flag; Some(true): sanitize-payload; Some(false): skip-sanitize-payload.
    sanitize: Option<bool>,
    passwords: Vec<String>,
    selectors: Vec<Selector>,
}

impl User {
    fn new(name: &[u8], uid: u64, pubsub_all: bool) -> User {
        User {
            name: name.to_vec(),
            uid,
            enabled: false,
            nopass: false,
            sanitize: None,
            passwords: Vec::new(),
            selectors: vec![Selector::new(true, pubsub_all)],
        }
    }

    fn default_user(uid: u64, pubsub_all: bool) -> User {
        let mut u = User::new(b"default", uid, pubsub_all);
        for op in ["+@all", "~*", "&*", "on", "nopass"] {
            u.apply(op.as_bytes(), pubsub_all).expect("default user rules");
        }
        u
    }

    pub fn enabled(&self) -> bool {
        self.enabled
    }
    pub fn nopass(&self) -> bool {
        self.nopass
    }

    /// `ACLSetUser`: one rule.
    pub fn apply(&mut self, op: &[u8], pubsub_all: bool) -> Result<(), RuleError> {
        if op.is_empty() {
            return Ok(());
        }
        let is = |s: &str| op.eq_ignore_ascii_case(s.as_bytes());
        if is("on") {
            self.enabled = true;
        } else if is("off") {
            self.enabled = false;
        } else if is("skip-sanitize-payload") {
            self.sanitize = Some(false);
        } else if is("sanitize-payload") {
            self.sanitize = Some(true);
        } else if is("nopass") {
            self.nopass = true;
            self.passwords.clear();
        } else if is("resetpass") {
            self.nopass = false;
            self.passwords.clear();
        } else if op[0] == b'>' || op[0] == b'#' {
            let hash = if op[0] == b'>' { sha256::hex(&op[1..]) } else { valid_hash(&op[1..])? };
            if !self.passwords.contains(&hash) {
                self.passwords.push(hash);
            }
            self.nopass = false;
        } else if op[0] == b'<' || op[0] == b'!' {
            let hash = if op[0] == b'<' { sha256::hex(&op[1..]) } else { valid_hash(&op[1..])? };
            match self.passwords.iter().position(|p| *p == hash) {
                Some(i) => {
                    self.passwords.remove(i);
                }
                None => return Err(RuleError::NoSuchPassword),
            }
        } else if op[0] == b'(' && op[op.len() - 1] == b')' {
            let mut s = Selector::new(false, pubsub_all);
            let inner = &op[1..op.len() - 1];
            let args = crate::persistence::aof::manifest::split_args(inner).ok_or(RuleError::Syntax)?;
            for a in args {
                if !a.is_empty() {
                    s.apply(&a)?;
                }
            }
            self.selectors.push(s);
        } else if is("clearselectors") {
            self.selectors.truncate(1);
        } else if is("reset") {
            self.nopass = false;
            self.passwords.clear();
            let root = &mut self.selectors[0];
            root.allkeys = false;
            root.keys.clear();
            root.allchannels = pubsub_all;
            root.channels.clear();
            self.enabled = false;
            self.sanitize = Some(true);
            self.selectors.truncate(1);
            self.selectors[0].all_commands(false);
        } else {
            self.selectors[0].apply(op)?;
        }
        Ok(())
    }

    /// `ACLDescribeUser`: flags, passwords, selectors (ACL LIST, ACL SAVE).
    pub fn describe(&self) -> String {
        let mut res = String::new();
        for f in self.flag_names() {
            res.push_str(f);
            res.push(' ');
        }
        for p in &self.passwords {
            res.push('#');
            res.push_str(p);
            res.push(' ');
        }
        for s in &self.selectors {
            if s.root {
                res.push_str(&s.describe());
            } else {
                res.push_str(" (");
                res.push_str(&s.describe());
                res.push(')');
            }
        }
        res
    }

    pub fn flag_names(&self) -> Vec<&'static str> {
        let mut v = vec![if self.enabled { "on" } else { "off" }];
        if self.nopass {
            v.push("nopass");
        }
        match self.sanitize {
            Some(false) => v.push("skip-sanitize-payload"),
            Some(true) => v.push("sanitize-payload"),
            None => {}
        }
        v
    }

    pub fn passwords(&self) -> &[String] {
        &self.passwords
    }

    /// ACL GETUSER's `commands`, `keys`, `channels` of selector `i`.
    pub fn selector_fields(&self, i: usize) -> [String; 3] {
        let s = &self.selectors[i];
        [s.describe_commands(), s.key_patterns(), s.channel_patterns()]
    }

    pub fn selector_count(&self) -> usize {
        self.selectors.len()
    }

    /// Whether every command may run with every key and channel (no check).
    pub fn may_run_everything(&self) -> bool {
        self.selectors.iter().any(Selector::may_run_everything)
    }

    /// `ACLCheckAllUserCommandPerm`.
    pub fn check(&self, id: usize, args: &[&[u8]]) -> Result<(), Denied> {
        let mut keys = None;
        let mut relevant = Denied::Command;
        for s in &self.selectors {
            match s.check(id, args, &mut keys) {
                Ok(()) => return Ok(()),
                Err(e) => {
                    if e.rank() > relevant.rank() {
                        relevant = e;
                    }
                }
            }
        }
        Err(relevant)
    }

    /// Whether a selector that may run this SORT may read every key
    /// (`ACLUserCheckCmdWithUnrestrictedKeyAccess` with access flags).
    pub fn full_read_access(&self, args: &[&[u8]]) -> bool {
        let Some(id) = CommandTable::get().lookup(args[0]) else { return false };
        self.selectors.iter().any(|s| s.check(id, args, &mut None).is_ok() && (s.allkeys || s.keys.iter().any(|(p, f)| p == b"*" && f & PERM_READ != 0)))
    }

    /// Whether some selector allows every channel.
    pub fn all_channels(&self) -> bool {
        self.selectors.iter().any(|s| s.allchannels)
    }

    /// Whether the user may access `channel` (`ACLUserCheckChannelPerm`).
    pub fn channel_allowed(&self, channel: &[u8], literal: bool) -> bool {
        self.selectors.iter().any(|s| s.channel_allowed(channel, literal))
    }

    fn password_matches(&self, pass: &[u8]) -> bool {
        let h = sha256::hex(pass);
        // Every stored hash is compared (no early exit on a match).
        self.passwords.iter().fold(false, |ok, p| ok | constant_time_eq(p.as_bytes(), h.as_bytes()))
    }
}

fn valid_hash(h: &[u8]) -> Result<String, RuleError> {
    if h.len() != 64 || !h.iter().all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c)) {
        return Err(RuleError::BadHash);
    }
    Ok(String::from_utf8_lossy(h).into_owned())
}

/// Compares without an early exit, so the time taken does not tell how much
/// of a guessed password was right.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Merges selector arguments split over several arguments
/// (`ACLMergeSelectorArguments`); Err(index of the unmatched opening one).
pub fn merge_selector_args(args: &[&[u8]]) -> Result<Vec<Vec<u8>>, usize> {
    let mut out = Vec::new();
    let mut open: Option<(usize, Vec<u8>)> = None;
    for (j, op) in args.iter().enumerate() {
        if let Some((start, mut sel)) = open.take() {
            sel.push(b' ');
            sel.extend_from_slice(op);
            if op.last() == Some(&b')') {
                out.push(sel);
            } else {
                open = Some((start, sel));
            }
            continue;
        }
        if op.first() == Some(&b'(') && op.last() != Some(&b')') {
            open = Some((j, op.to_vec()));
            continue;
        }
        out.push(op.to_vec());
    }
    match open {
        Some((start, _)) => Err(start),
        None => Ok(out),
    }
}

/// ACL LOG's reasons.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Command,
    Key,
    Channel,
    Auth,
}

/// ACL LOG's contexts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Context {
    Toplevel,
    Multi,
    Lua,
}

pub struct LogEntry {
    pub count: u64,
    pub reason: Reason,
    pub context: Context,
    pub object: Vec<u8>,
    pub username: Vec<u8>,
    pub ctime_ms: i64,
    pub client_info: String,
}

/// Entries this close in time (and otherwise equal) are one entry, counted.
const LOG_GROUPING_MS: i64 = 60_000;

/// The server's ACL state, shared by every shard.
pub struct Acl {
    users: RwLock<BTreeMap<Vec<u8>, Arc<User>>>,
    /// Bumped after every change of a user (`ClientAcl::generation`).
    generation: AtomicU64,
    /// The default user needs a password or is off: new connections start
    /// unauthenticated (Redis's `authRequired`).
    auth_required: AtomicBool,
    next_uid: AtomicU64,
    log: Mutex<VecDeque<LogEntry>>,
    pub log_max_len: AtomicUsize,
    /// `acl-pubsub-default allchannels`.
    pub pubsub_all: AtomicBool,
    /// `aclfile` (empty: none).
    pub filename: Mutex<String>,
}

impl Default for Acl {
    fn default() -> Self {
        let mut users = BTreeMap::new();
        users.insert(b"default".to_vec(), Arc::new(User::default_user(1, false)));
        Acl {
            users: RwLock::new(users),
            generation: AtomicU64::new(1),
            auth_required: AtomicBool::new(false),
            next_uid: AtomicU64::new(2),
            log: Mutex::new(VecDeque::new()),
            log_max_len: AtomicUsize::new(128),
            pubsub_all: AtomicBool::new(false),
            filename: Mutex::new(String::new()),
        }
    }
}

/// A connection's user: the snapshot it runs with, the generation it was
/// taken at, and whether it may run everything (no check).
#[derive(Debug, Default)]
pub struct ClientAcl {
    /// None until the first command: the default user.
    pub user: Option<Arc<User>>,
    pub generation: u64,
    pub unrestricted: bool,
}

impl ClientAcl {
    pub fn user_name(&self) -> &[u8] {
        self.user.as_ref().map_or(b"default", |u| &u.name)
    }
    fn set(&mut self, user: Arc<User>, generation: u64) {
        self.unrestricted = user.may_run_everything();
        self.user = Some(user);
        self.generation = generation;
    }
}

impl Acl {
    /// The generation connections compare theirs with (one relaxed load).
    #[inline]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Relaxed)
    }

    #[inline]
    pub fn auth_required(&self) -> bool {
        self.auth_required.load(Ordering::Relaxed)
    }

    pub fn pubsub_all(&self) -> bool {
        self.pubsub_all.load(Ordering::Relaxed)
    }

    fn published(&self, users: &BTreeMap<Vec<u8>, Arc<User>>) {
        let d = &users[&b"default"[..]];
        self.auth_required.store(!d.nopass || !d.enabled, Ordering::Relaxed);
        self.generation.fetch_add(1, Ordering::Release);
    }

    pub fn get(&self, name: &[u8]) -> Option<Arc<User>> {
        self.users.read().unwrap().get(name).cloned()
    }

    pub fn names(&self) -> Vec<Vec<u8>> {
        self.users.read().unwrap().keys().cloned().collect()
    }

    pub fn all(&self) -> Vec<Arc<User>> {
        self.users.read().unwrap().values().cloned().collect()
    }

    /// Brings a connection's snapshot up to date. False: its user was
    /// deleted (or replaced by ACL LOAD): the connection is to be closed.
    pub fn refresh(&self, c: &mut ClientAcl) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        let users = self.users.read().unwrap();
        let name: &[u8] = c.user.as_ref().map_or(b"default", |u| &u.name);
        match users.get(name) {
            Some(u) if c.user.as_ref().is_none_or(|old| old.uid == u.uid) => {
                let u = u.clone();
                drop(users);
                c.set(u, generation);
                true
            }
            _ => {
                drop(users);
                c.set(self.get(b"default").expect("default user"), generation);
                false
            }
        }
    }

    /// `ACLCheckUserCredentials` then, when they are valid, the connection
    /// runs as that user. False for a wrong pair or a disabled user.
    pub fn authenticate(&self, c: &mut ClientAcl, user: &[u8], pass: &[u8]) -> bool {
        let generation = self.generation.load(Ordering::Acquire);
        let Some(u) = self.get(user) else {
            return false;
        };
        if !u.enabled || !(u.nopass || u.password_matches(pass)) {
            return false;
        }
        c.set(u, generation);
        true
    }

    /// ACL SETUSER: the rules applied to a copy of the user (a new one when
    /// it does not exist), published only when all of them apply.
    pub fn set_user(&self, name: &[u8], ops: &[Vec<u8>]) -> Result<(), (Vec<u8>, RuleError)> {
        let pubsub_all = self.pubsub_all();
        let mut users = self.users.write().unwrap();
        let mut u = match users.get(name) {
            Some(u) => (**u).clone(),
            None => User::new(name, self.next_uid.fetch_add(1, Ordering::Relaxed), pubsub_all),
        };
        for op in ops {
            u.apply(op, pubsub_all).map_err(|e| (op.clone(), e))?;
        }
        users.insert(name.to_vec(), Arc::new(u));
        self.published(&users);
        Ok(())
    }

    /// ACL DELUSER of existing users: how many were deleted.
    pub fn delete(&self, names: &[&[u8]]) -> usize {
        let mut users = self.users.write().unwrap();
        let n = names.iter().filter(|n| users.remove(**n).is_some()).count();
        if n > 0 {
            self.published(&users);
        }
        n
    }

    /// `requirepass`: the default user's password (None: nopass).
    pub fn set_default_password(&self, pass: Option<&[u8]>) {
        let mut users = self.users.write().unwrap();
        let mut u = (*users[&b"default"[..]]).clone();
        let pubsub_all = self.pubsub_all();
        let _ = u.apply(b"resetpass", pubsub_all);
        match pass {
            Some(p) => {
                let mut op = b">".to_vec();
                op.extend_from_slice(p);
                let _ = u.apply(&op, pubsub_all);
            }
            None => {
                let _ = u.apply(b"nopass", pubsub_all);
            }
        }
        users.insert(b"default".to_vec(), Arc::new(u));
        self.published(&users);
    }

    /// Replaces every user with `parsed` (ACL LOAD, start-up): the default
    /// user keeps its incarnation (its connections stay), every other user
    /// is new (connections authenticated as the old ones are closed).
    fn replace_all(&self, parsed: Vec<User>) {
        let mut users = self.users.write().unwrap();
        let default_uid = users[&b"default"[..]].uid;
        let mut new = BTreeMap::new();
        for mut u in parsed {
            u.uid = if u.name == b"default" { default_uid } else { self.next_uid.fetch_add(1, Ordering::Relaxed) };
            new.insert(u.name.clone(), Arc::new(u));
        }
        new.entry(b"default".to_vec()).or_insert_with(|| Arc::new(User::default_user(default_uid, self.pubsub_all())));
        *users = new;
        self.published(&users);
    }

    /// Applies `user` directives of the config file (`ACLLoadConfiguredUsers`).
    pub fn load_configured(&self, defs: &[Vec<String>]) -> Result<(), String> {
        let pubsub_all = self.pubsub_all();
        let mut parsed: Vec<User> = Vec::new();
        for def in defs {
            let name = def[0].as_bytes();
            if has_spaces(name) {
                return Err("Spaces not allowed in ACL usernames".into());
            }
            let mut u = if name == b"default" {
                let mut d = User::default_user(0, pubsub_all);
                let _ = d.apply(b"reset", pubsub_all);
                d
            } else {
                User::new(name, 0, pubsub_all)
            };
            for op in &def[1..] {
                if let Err(e) = u.apply(op.as_bytes(), pubsub_all) {
                    return Err(format!("Error loading ACL rule '{}' for the user named '{}': {}", op, def[0], e.text()));
                }
            }
            if !u.enabled {
                crate::notice!(
                    "The user '{}' is disabled (there is no 'on' modifier in the user description). Make sure this is not a configuration error.",
                    def[0]
                );
            }
            parsed.push(u);
        }
        if parsed.is_empty() {
            return Ok(());
        }
        let mut users = self.users.write().unwrap();
        for mut u in parsed {
            u.uid = if u.name == b"default" { users[&b"default"[..]].uid } else { self.next_uid.fetch_add(1, Ordering::Relaxed) };
            users.insert(u.name.clone(), Arc::new(u));
        }
        self.published(&users);
        Ok(())
    }

    /// `ACLLoadFromFile` of `filename` (as configured: the errors name it),
    /// found at `path`: None when loaded, else the errors (nothing changed).
    pub fn load_file(&self, filename: &str, path: &str) -> Option<String> {
        let text = match std::fs::read(path) {
            Ok(t) => t,
            Err(e) => return Some(format!("Error loading ACLs, opening file '{}': {}", filename, crate::config::table_strerror(&e))),
        };
        let pubsub_all = self.pubsub_all();
        let mut errors = String::new();
        let mut parsed: Vec<User> = Vec::new();
        for (i, raw) in text.split(|&b| b == b'\n').enumerate() {
            let linenum = i + 1;
            let line = trim(raw, b" \t\r\n");
            if line.is_empty() {
                continue;
            }
            let argv: Vec<&[u8]> = line.split(|&b| b == b' ').filter(|a| !a.is_empty()).collect();
            if argv.is_empty() {
                continue;
            }
            if argv[0] != b"user" || argv.len() < 2 {
                errors.push_str(&format!("{}:{} should start with user keyword followed by the username. ", filename, linenum));
                continue;
            }
            if has_spaces(argv[1]) {
                errors.push_str(&format!("'{}:{}: username '{}' contains invalid characters. ", filename, linenum, String::from_utf8_lossy(argv[1])));
                continue;
            }
            if parsed.iter().any(|u| u.name == argv[1]) {
                errors.push_str(&format!("WARNING: Duplicate user '{}' found on line {}. ", String::from_utf8_lossy(argv[1]), linenum));
                continue;
            }
            let mut u = User::new(argv[1], 0, pubsub_all);
            match merge_selector_args(&argv[2..]) {
                Err(_) => errors.push_str(&format!("{}:{}: Unmatched parenthesis in selector definition.", filename, linenum)),
                Ok(ops) => {
                    for op in ops {
                        let op = trim(&op, b"\t\r\n");
                        if let Err(e) = u.apply(op, pubsub_all) {
                            errors.push_str(&format!(
                                "{}:{}: Error in applying operation '{}': {}. ",
                                filename,
                                linenum,
                                String::from_utf8_lossy(op),
                                e.text()
                            ));
                        }
                    }
                }
            }
            parsed.push(u);
        }
        if !errors.is_empty() {
            errors.push_str("WARNING: ACL errors detected, no change to the previously active ACL rules was performed");
            return Some(errors);
        }
        self.replace_all(parsed);
        None
    }

    /// `ACLSaveToFile`: every user in the file format, written to a
    /// temporary file renamed over the ACL file.
    pub fn save_file(&self, filename: &str) -> Result<(), String> {
        let mut text = String::new();
        for u in self.all() {
            text.push_str("user ");
            text.push_str(&String::from_utf8_lossy(&u.name));
            text.push(' ');
            text.push_str(&u.describe());
            text.push('\n');
        }
        let tmp = format!("{}.tmp-{}-{}", filename, std::process::id(), crate::util::unix_ms());
        let result = std::fs::write(&tmp, text.as_bytes())
            .map_err(|e| format!("Writing ACL file for ACL SAVE: {}", e))
            .and_then(|_| std::fs::rename(&tmp, filename).map_err(|e| format!("Renaming ACL file for ACL SAVE: {}", e)));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    /// `addACLLogEntry`.
    #[allow(clippy::too_many_arguments)]
    pub fn log(&self, reason: Reason, context: Context, object: &[u8], username: &[u8], client_info: String, now_ms: i64) {
        let mut log = self.log.lock().unwrap();
        let found = log.iter().take(10).position(|e| {
            e.reason == reason && e.context == context && (e.ctime_ms - now_ms).abs() <= LOG_GROUPING_MS && e.object == object && e.username == username
        });
        if let Some(i) = found {
            let mut e = log.remove(i).unwrap();
            e.count += 1;
            e.ctime_ms = now_ms;
            e.client_info = client_info;
            log.push_front(e);
            return;
        }
        log.push_front(LogEntry { count: 1, reason, context, object: object.to_vec(), username: username.to_vec(), ctime_ms: now_ms, client_info });
        let max = self.log_max_len.load(Ordering::Relaxed);
        log.truncate(max);
    }

    pub fn log_reset(&self) {
        self.log.lock().unwrap().clear();
    }

    /// Applies `f` to the `count` newest entries.
    pub fn with_log<R>(&self, f: impl FnOnce(&VecDeque<LogEntry>) -> R) -> R {
        f(&self.log.lock().unwrap())
    }

    /// `acllog-max-len` changed: the log is trimmed at the next entry, as Redis.
    pub fn set_log_max_len(&self, n: usize) {
        self.log_max_len.store(n, Ordering::Relaxed);
    }
}

/// The ACL's config parameters: `acllog-max-len`, `acl-pubsub-default`
/// and, when `requirepass` was set, the default user's password.
pub fn apply_config(acl: &Acl, config: &crate::config::Config, requirepass_set: bool) {
    if let Some(n) = config.others.get("acllog-max-len").and_then(|v| v.parse().ok()) {
        acl.set_log_max_len(n);
    }
    acl.pubsub_all.store(config.others.get("acl-pubsub-default").is_some_and(|v| v == "allchannels"), Ordering::Relaxed);
    if requirepass_set {
        acl.set_default_password(config.requirepass.as_deref());
    }
}

/// Start-up (`ACLLoadUsersAtStartup`): `requirepass`, the config file's
/// `user` directives or the ACL file (not both).
pub fn load_at_startup(acl: &Acl, config: &crate::config::Config) -> Result<(), String> {
    apply_config(acl, config, config.requirepass.is_some());
    let file = config.others.get("aclfile").cloned().unwrap_or_default();
    *acl.filename.lock().unwrap() = file.clone();
    if !file.is_empty() && !config.users.is_empty() {
        return Err("Configuring Redis with users defined in redis.conf and at the same setting an ACL file path is invalid. This setup is very likely to lead to configuration errors and security holes, please define either an ACL file or declare users directly in your redis.conf, but not both.".into());
    }
    acl.load_configured(&config.users).map_err(|e| format!("{}\nCritical error while loading ACLs. Exiting.", e))?;
    if !file.is_empty() {
        if let Some(errors) = acl.load_file(&file, &resolve(&config.dir, &file)) {
            return Err(format!("Aborting Redis startup because of ACL errors: {}", errors));
        }
    }
    Ok(())
}

/// The ACL file's path: relative to `dir` (where Redis has moved by then).
pub fn resolve(dir: &str, file: &str) -> String {
    if file.starts_with('/') || dir.is_empty() {
        file.to_string()
    } else {
        std::path::Path::new(dir).join(file).to_string_lossy().into_owned()
    }
}

fn trim<'a>(mut s: &'a [u8], set: &[u8]) -> &'a [u8] {
    while let Some((f, rest)) = s.split_first() {
        if !set.contains(f) {
            break;
        }
        s = rest;
    }
    while let Some((l, rest)) = s.split_last() {
        if !set.contains(l) {
            break;
        }
        s = rest;
    }
    s
}

/// Whether a connection's subscriptions are all still allowed to `user`
/// (Redis kills a subscriber whose channel permission was removed).
pub fn subscriptions_allowed(user: &User, subs: &crate::messaging::pubsub::ClientSubs) -> bool {
    if !subs.any() || user.all_channels() {
        return true;
    }
    subs.patterns.iter().all(|p| user.channel_allowed(p, true))
        && subs.channels.iter().all(|c| user.channel_allowed(c, false))
        && subs.shard_channels.iter().all(|c| user.channel_allowed(c, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(ops: &[&str]) -> User {
        let mut u = User::new(b"u", 9, false);
        for op in ops {
            u.apply(op.as_bytes(), false).unwrap();
        }
        u
    }

    fn id(name: &str) -> usize {
        lookup_command(name.as_bytes()).unwrap()
    }

    #[test]
    fn default_user_runs_everything() {
        let d = User::default_user(1, false);
        assert!(d.may_run_everything());
        assert_eq!(d.describe(), "on nopass ~* &* +@all");
    }

    #[test]
    fn describe_new_user_and_rules() {
        assert_eq!(user(&[]).describe(), "off resetchannels -@all");
        let u = user(&["on", ">p1", "~foo*", "%R~bar*", "&ch*", "+get", "+@hash", "-hset", "+config|get"]);
        assert_eq!(
            u.describe(),
            "on #f64551fcd6f07823cb87971cfb91446425da18286b3ab1ef935e0cbd7a69f68a ~foo* %R~bar* resetchannels &ch* -@all +@hash +get -hset +config|get"
        );
        let u = user(&["+@all", "-flushall"]);
        assert_eq!(u.describe(), "off resetchannels +@all -flushall");
    }

    #[test]
    fn command_key_and_channel_checks() {
        let u = user(&["on", "nopass", "+get", "+set", "+publish", "~k*", "&news"]);
        assert_eq!(u.check(id("get"), &[b"get", b"k1"]), Ok(()));
        assert_eq!(u.check(id("get"), &[b"get", b"x"]), Err(Denied::Key(1)));
        assert_eq!(u.check(id("del"), &[b"del", b"k1"]), Err(Denied::Command));
        assert_eq!(u.check(id("publish"), &[b"publish", b"news", b"m"]), Ok(()));
        assert_eq!(u.check(id("publish"), &[b"publish", b"other", b"m"]), Err(Denied::Channel(1)));
        // AUTH and the other no-auth commands are never refused.
        assert_eq!(u.check(id("auth"), &[b"auth", b"a", b"b"]), Ok(()));
    }

    #[test]
    fn read_write_key_patterns() {
        let u = user(&["+@all", "%R~r*", "%W~w*"]);
        assert_eq!(u.check(id("get"), &[b"get", b"r1"]), Ok(()));
        assert_eq!(u.check(id("get"), &[b"get", b"w1"]), Err(Denied::Key(1)));
        assert_eq!(u.check(id("set"), &[b"set", b"w1", b"v"]), Ok(()));
        assert_eq!(u.check(id("set"), &[b"set", b"w1", b"v", b"get"]), Err(Denied::Key(1)));
        assert_eq!(u.check(id("set"), &[b"set", b"r1", b"v"]), Err(Denied::Key(1)));
    }

    #[test]
    fn selectors_and_first_args() {
        let u = user(&["+select|0", "(+get ~x*)"]);
        assert_eq!(u.check(id("select"), &[b"select", b"0"]), Ok(()));
        assert_eq!(u.check(id("select"), &[b"select", b"1"]), Err(Denied::Command));
        assert_eq!(u.check(id("get"), &[b"get", b"xy"]), Ok(()));
        assert_eq!(u.check(id("get"), &[b"get", b"y"]), Err(Denied::Key(1)));
        assert_eq!(u.describe(), "off resetchannels -@all +select|0 (~x* resetchannels -@all +get)");
    }

    #[test]
    fn rule_errors() {
        let mut u = user(&[]);
        assert_eq!(u.apply(b"+nosuch", false), Err(RuleError::Unknown));
        assert_eq!(u.apply(b"+@nosuch", false), Err(RuleError::Unknown));
        assert_eq!(u.apply(b"bogus", false), Err(RuleError::Syntax));
        assert_eq!(u.apply(b"#abc", false), Err(RuleError::BadHash));
        assert_eq!(u.apply(b"<nope", false), Err(RuleError::NoSuchPassword));
        assert_eq!(u.apply(b"+config|get|x", false), Err(RuleError::FirstArgOfSub));
        u.apply(b"allkeys", false).unwrap();
        assert_eq!(u.apply(b"~x", false), Err(RuleError::KeysAfterAll));
        assert_eq!(merge_selector_args(&[b"(+get", b"~x)", b"on"]), Ok(vec![b"(+get ~x)".to_vec(), b"on".to_vec()]));
        assert_eq!(merge_selector_args(&[b"on", b"(+get"]), Err(1));
    }
}
