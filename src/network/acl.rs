//! The ACL's part of the command path (Redis's `processCommand` ACL
//! check) and of the cron: a connection's user snapshot kept current, its
//! commands checked when the user may not run everything, connections of
//! deleted users and subscribers that lost a channel closed.

use super::dispatch::Flow;
use super::event_loop::EventLoop;
use crate::acl::Context;
use crate::commands::CommandTable;

/// The error a queued command denied at EXEC time gets, before its reason.
const EXEC_DENIED: &str = "NOPERM ACLs rules changed between the moment the transaction was accumulated and the EXEC call. \
                           This command is no longer allowed for the following reason: ";

impl EventLoop {
    /// The ACL users changed since connection `index` took its snapshot:
    /// takes the new one. Some(Stop): the connection was closed (its user
    /// was deleted, or it is subscribed to a channel no longer allowed).
    pub(super) fn acl_refresh(&mut self, index: u32) -> Option<Flow> {
        let conn = self.conns[index as usize].as_mut()?;
        let kept = self.server.acl.refresh(&mut conn.client.acl);
        let allowed = conn.client.acl.user.as_ref().is_none_or(|u| crate::acl::subscriptions_allowed(u, &conn.client.pubsub));
        if kept && allowed {
            return None;
        }
        conn.client.authenticated = false;
        self.close(index);
        Some(Flow::Stop)
    }

    /// Checks command `id` against the user of connection `index`; on a
    /// denial, logs it and replies Redis's -NOPERM error.
    #[cold]
    pub(super) fn acl_check(&mut self, index: u32, id: usize, args: &[&[u8]]) -> Option<Flow> {
        let conn = self.conns[index as usize].as_ref()?;
        let user = conn.client.acl.user.clone()?;
        let denied = user.check(id, args).err()?;
        let spec = &CommandTable::get().specs[id];
        let context = if conn.client.multi.active { Context::Multi } else { Context::Toplevel };
        let object = match denied.pos() {
            Some(p) => args[p],
            None => spec.name.as_bytes(),
        };
        let info = self.client_line_of(index);
        self.server.acl.log(denied.reason(), context, object, &user.name, info, crate::util::unix_ms());
        Some(self.reject(index, Some(id), denied.reply(spec.name).as_bytes()))
    }

    /// EXEC's re-check of queued command `id` (Redis's `execCommand`: the
    /// rules may have changed since it was queued). On a denial, logs it in
    /// the `multi` context, appends Redis's -NOPERM error as the command's
    /// slot of EXEC's reply and returns true: the command is skipped.
    pub(super) fn exec_acl_denied(&mut self, index: u32, id: usize, args: &[&[u8]]) -> bool {
        let Some(conn) = self.conns[index as usize].as_ref() else { return false };
        if conn.client.acl.unrestricted {
            return false;
        }
        let Some(user) = conn.client.acl.user.clone() else { return false };
        let Err(denied) = user.check(id, args) else { return false };
        let object = match denied.pos() {
            Some(p) => args[p],
            None => CommandTable::get().specs[id].name.as_bytes(),
        };
        let info = self.client_line_of(index);
        self.server.acl.log(denied.reason(), Context::Multi, object, &user.name, info, crate::util::unix_ms());
        let conn = self.conns[index as usize].as_mut().unwrap();
        let mut r = crate::protocol::Reply::new(&mut conn.out, conn.client.resp);
        r.error_parts(&[EXEC_DENIED.as_bytes(), denied.exec_reason().as_bytes()]);
        self.state().stats.record_error("NOPERM");
        true
    }

    /// Connection `index`'s CLIENT LIST line, without its newline.
    pub(super) fn client_line_of(&mut self, index: u32) -> String {
        let now = self.clock.now_ms();
        let mut s = String::new();
        let user = self.conns[index as usize].as_ref().map(|c| c.client.acl.user_name().to_vec()).unwrap_or_default();
        if let Some(info) = self.state().clients.get_mut(index as usize).and_then(|i| i.as_mut()) {
            info.user = user;
            crate::commands::client::client_line(info, now, 0, &mut s);
            s.pop();
        }
        s
    }

    /// The cron's part: every connection whose snapshot is older than the
    /// users brought up to date (closing those `acl_refresh` closes), so
    /// that a deleted user's idle connections go as in Redis.
    pub(super) fn acl_cron(&mut self) {
        let generation = self.server.acl.generation();
        for index in 0..self.conns.len() as u32 {
            let stale = self.conns[index as usize]
                .as_ref()
                .is_some_and(|c| c.closing == super::conn::Closing::No && c.client.acl.generation != generation && c.client.acl.generation != 0);
            if stale {
                self.acl_refresh(index);
            }
        }
    }
}
