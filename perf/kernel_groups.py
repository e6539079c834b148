#!/usr/bin/env python3
"""Groups `perf script` call chains of a server into kernel cost groups (issue 14).

  perf script -i F.data | kernel_groups.py group --server NAME --requests N \
        --user-us U --sys-us S > F.json
      one run: samples per group, scaled to microseconds per request by the
      server's measured user and kernel CPU time (utime/stime over the run);
      with --cpu-us T instead, the total T (e.g. schedstat's ns, finer than
      ticks) is split into user and kernel by the samples' shares
  kernel_groups.py table A.json B.json ...
      the runs side by side: per server, the median over its runs of each
      group's microseconds per request, and the ringkv/redis ratio
  perf script -i F.data | kernel_groups.py unmatched [--top 40]
      the kernel call chains no group claims (to extend GROUPS); --group G
      lists the chains one group claims instead

A sample's group is that of the innermost frame (leaf first) whose function
names a group, so `tcp_sendmsg` claims the copy and skb work under it but not
the softirq that delivers the segment to the peer (`net_rx_action` is nearer
the leaf), nor the wake-up of the peer inside that softirq. Samples whose
leaf is in user space are "user"; kernel samples no group claims are
"kernel, other". The kernel share is scaled by the measured stime, the user
share by utime, so a group reads as microseconds of CPU per request.
"""

import argparse
import json
import re
import statistics
import sys
from collections import Counter, defaultdict

# (group, exact function names, name prefixes). Order matters only for the
# table; a frame's group is looked up by name.
GROUPS = [
    ("softirq delivery to the peer", {
        "net_rx_action", "__do_softirq", "handle_softirqs", "do_softirq", "__local_bh_enable_ip",
        "process_backlog", "__netif_receive_skb", "__netif_receive_skb_one_core", "netif_rx",
        "netif_rx_internal", "loopback_xmit", "ip_rcv", "ip_local_deliver", "ip_local_deliver_finish",
        "ip_protocol_deliver_rcu", "tcp_v4_rcv", "tcp_v4_do_rcv", "tcp_rcv_established",
        "tcp_data_queue", "tcp_ack", "tcp_queue_rcv", "tcp_event_data_recv", "__tcp_ack_snd_check",
        "irq_exit_rcu", "sysvec_call_function_single", "asm_sysvec_call_function_single",
        "run_ksoftirqd",
    }, ("net_rx", "__napi", "napi_")),
    ("wake-ups", {
        "try_to_wake_up", "wake_up_process", "__wake_up", "__wake_up_common", "__wake_up_sync_key",
        "__wake_up_common_lock", "autoremove_wake_function", "default_wake_function",
        "sock_def_readable", "sk_stream_write_space", "tcp_check_space", "wake_up_q",
        "ep_poll_callback", "pollwake", "ttwu_do_activate", "ttwu_queue_wakelist", "select_task_rq_fair",
        "enqueue_task", "enqueue_task_fair", "activate_task", "resched_curr", "check_preempt_wakeup_fair",
        "wakeup_preempt", "__smp_call_single_queue", "send_call_function_single_ipi",
        "native_send_call_func_single_ipi", "io_poll_wake", "io_cqring_wake", "io_cqe_overflow",
        "__io_cqring_wake", "io_wake_function",
    }, ("ttwu_",)),
    ("io_uring task work", {
        "io_req_task_work_add", "__io_req_task_work_add", "io_req_local_work_add", "io_req_normal_work_add",
        "task_work_add", "task_work_run", "tctx_task_work", "tctx_task_work_run", "io_handle_tw_list",
        "io_run_local_work", "__io_run_local_work", "__io_run_local_work_loop", "io_run_local_work_locked",
        "io_poll_task_func", "io_req_task_submit", "io_req_task_complete", "io_poll_check_events",
        "io_apoll_task_func", "io_task_work_pending", "io_run_task_work", "io_fallback_tw",
        "io_req_tw_post", "io_req_rw_complete", "io_move_task_work_from_local",
    }, ()),
    ("fget/fput", {
        "fget", "__fget", "__fget_light", "fdget", "fget_raw", "__fget_files", "fput", "____fput",
        "fdget_pos", "__fdget", "__fdget_pos", "io_file_get_normal", "io_file_get_fixed", "io_put_file",
        "fput_many", "__fput", "file_ref_put", "file_ref_get", "sockfd_lookup_light", "sockfd_lookup",
    }, ("fget", "fput", "__fget", "__fput")),
    ("TCP send", {
        "tcp_sendmsg", "tcp_sendmsg_locked", "tcp_push", "__tcp_push_pending_frames", "tcp_write_xmit",
        "__tcp_transmit_skb", "tcp_transmit_skb", "ip_queue_xmit", "__ip_queue_xmit", "ip_output",
        "ip_finish_output", "ip_finish_output2", "__dev_queue_xmit", "dev_hard_start_xmit",
        "sock_sendmsg", "__sock_sendmsg", "sock_write_iter", "tcp_stream_alloc_skb", "skb_copy_to_page_nocache",
        "tcp_send_mss", "tcp_current_mss", "tcp_skb_entail", "tcp_send_ack", "__tcp_send_ack",
        "tcp_rate_skb_sent", "tcp_event_new_data_sent", "tcp_established_options", "tcp_options_write",
        "tcp_wfree", "sk_page_frag_refill", "skb_page_frag_refill", "tcp_tso_segs", "tcp_schedule_loss_probe",
        "tcp_rearm_rto", "ip_local_out", "__ip_local_out", "nf_hook_slow", "neigh_hh_output", "security_socket_sendmsg",
        "inet_sendmsg", "tcp_sendmsg_fastopen",
    }, ("tcp_send", "tcp_write")),
    ("TCP receive", {
        "tcp_recvmsg", "tcp_recvmsg_locked", "sock_recvmsg", "inet_recvmsg", "sock_read_iter",
        "skb_copy_datagram_iter", "__skb_datagram_iter", "tcp_cleanup_rbuf", "tcp_rcv_space_adjust",
        "__tcp_cleanup_rbuf", "skb_attempt_defer_free", "tcp_eat_recv_skb", "sock_rfree", "__kfree_skb",
        "kfree_skb_reason", "sk_wait_data", "tcp_poll", "sock_poll", "security_socket_recvmsg", "tcp_recv_timestamp",
        "__sk_mem_reduce_allocated", "sk_forced_mem_schedule", "lock_sock_nested", "release_sock", "__release_sock",
    }, ("tcp_recv",)),
    ("io_uring submission", {
        "io_submit_sqes", "io_submit_sqe", "io_init_req", "io_issue_sqe", "io_queue_sqe", "io_queue_async",
        "io_send", "io_sendmsg", "io_send_prep", "io_sendmsg_prep", "io_recv", "io_recvmsg", "io_recv_prep",
        "io_recvmsg_prep", "io_send_setup", "io_recv_finish", "io_arm_poll_handler", "__io_arm_poll_handler",
        "io_poll_add", "__io_poll_execute", "io_msg_ring", "io_msg_ring_data", "io_msg_ring_prep",
        "io_msg_data_remote", "io_msg_tw_complete", "io_buffer_select", "io_ring_buffer_select", "io_buffers_select",
        "io_kbuf_recycle", "io_put_kbufs", "__io_put_kbufs", "io_kbuf_commit", "io_assign_file",
        "io_accept", "io_alloc_async_data", "io_netmsg_recycle", "io_req_msg_cleanup", "io_sendrecv_fail",
        "io_poll_remove_entries", "io_pollfree_wake", "vfs_poll", "io_net_import_vec", "io_recv_buf_select",
        "io_send_select_buffer", "io_recv_import", "import_ubuf", "io_sqe_buffer_register",
    }, ("io_poll", "io_send", "io_recv", "io_submit", "io_msg", "io_kbuf", "io_buffer")),
    ("io_uring completion", {
        "io_req_complete_post", "__io_submit_flush_completions", "io_submit_flush_completions",
        "io_fill_cqe_req", "io_cqe_cache_refill", "io_free_batch_list", "io_req_post_cqe", "io_post_aux_cqe",
        "__io_post_aux_cqe", "io_aux_cqe", "io_req_complete_defer", "io_commit_cqring", "io_cqring_ev_posted",
        "__io_commit_cqring_flush", "io_commit_cqring_flush", "io_req_cqe_overflow", "io_cqring_event_overflow",
        "io_get_cqe_overflow", "io_fill_cqe_aux", "io_req_defer_failed", "io_free_req", "io_req_put_rsrc_nodes",
    }, ("io_cq", "io_fill_cqe", "io_req_complete")),
    ("io_uring wait/enter", {
        "__do_sys_io_uring_enter", "__x64_sys_io_uring_enter", "io_cqring_wait", "io_cqring_wait_schedule",
        "io_get_ext_arg", "io_uring_enter", "io_cqring_min_timer_wakeup", "io_cqring_timer_wakeup",
        "io_wake_function", "io_should_wake", "io_cqring_schedule_timeout", "__io_cqring_wait_schedule",
    }, ()),
    ("timers", {
        "hrtimer_start_range_ns", "hrtimer_cancel", "hrtimer_try_to_cancel", "__hrtimer_run_queues",
        "hrtimer_interrupt", "__sysvec_apic_timer_interrupt", "sysvec_apic_timer_interrupt",
        "asm_sysvec_apic_timer_interrupt", "hrtimer_init_sleeper", "hrtimer_sleeper_start_expires",
        "schedule_hrtimeout_range", "schedule_hrtimeout_range_clock", "tick_sched_timer", "enqueue_hrtimer",
        "sk_reset_timer", "mod_timer", "__mod_timer", "lock_timer_base", "timer_delete", "__timer_delete",
        "tcp_update_pacing_rate", "ktime_get", "read_tsc", "clockevents_program_event", "lapic_next_deadline",
    }, ("hrtimer", "tick_", "timerqueue")),
    ("epoll", {
        "do_epoll_wait", "__x64_sys_epoll_wait", "ep_poll", "ep_send_events", "ep_item_poll", "ep_start_scan",
        "ep_done_scan", "__x64_sys_epoll_ctl", "do_epoll_ctl", "ep_modify", "ep_insert", "ep_remove",
    }, ("ep_",)),
    ("syscall entry/exit, read/write", {
        "entry_SYSCALL_64", "entry_SYSCALL_64_after_hwframe", "do_syscall_64", "syscall_exit_to_user_mode",
        "syscall_exit_to_user_mode_prepare", "exit_to_user_mode_prepare", "syscall_return_via_sysret",
        "entry_SYSRETQ_unsafe_stack", "__x64_sys_read", "__x64_sys_write", "ksys_read", "ksys_write",
        "vfs_read", "vfs_write", "rw_verify_area", "__fsnotify_parent", "fsnotify", "x64_sys_call",
        "syscall_enter_from_user_mode", "arch_exit_to_user_mode_prepare", "__rseq_handle_notify_resume",
        "rseq_ip_fixup", "rseq_update_cpu_node_id", "entry_SYSCALL_64_safe_stack", "__x64_sys_getpid",
        "fpregs_assert_state_consistent", "switch_fpu_return", "restore_fpregs_from_fpstate",
    }, ("syscall_", "__x64_sys_", "rseq")),
    ("scheduler", {
        "schedule", "__schedule", "pick_next_task", "pick_next_task_fair", "finish_task_switch",
        "finish_task_switch.isra.0", "__switch_to", "__switch_to_asm", "dequeue_task", "dequeue_task_fair",
        "dequeue_entity", "update_curr", "put_prev_task_fair", "set_next_entity", "pick_next_entity",
        "update_load_avg", "psi_task_change", "psi_group_change", "psi_task_switch", "prepare_task_switch",
        "schedule_idle", "do_sched_yield", "__x64_sys_sched_yield", "yield_task_fair", "raw_spin_rq_lock_nested",
        "sched_clock_cpu", "update_rq_clock", "newidle_balance", "sched_balance_newidle", "balance_fair",
        "__pick_next_task", "pick_task_fair", "dequeue_entities", "__dequeue_entity", "context_switch",
        "cpuacct_charge", "update_cfs_group", "reweight_entity", "account_entity_dequeue",
    }, ("sched_", "psi_", "pick_next")),
    ("page faults, memory", {
        "asm_exc_page_fault", "exc_page_fault", "handle_mm_fault", "__handle_mm_fault", "do_anonymous_page",
        "clear_page_erms", "do_user_addr_fault",
    }, ()),
]

NAME_TO_GROUP = {}
PREFIXES = []
for group, names, prefixes in GROUPS:
    for n in names:
        NAME_TO_GROUP.setdefault(n, group)
    for p in prefixes:
        PREFIXES.append((p, group))

USER = "user space"
OTHER = "kernel, other"
ORDER = [g for g, _, _ in GROUPS] + [OTHER, USER]

FRAME = re.compile(r"^\s+([0-9a-f]+)\s+(.*?)\s+\((.*)\)\s*$")


def group_of(name):
    name = name.split("+0x")[0]
    g = NAME_TO_GROUP.get(name)
    if g:
        return g
    base = name.split(".")[0]  # foo.isra.0, foo.cold
    g = NAME_TO_GROUP.get(base)
    if g:
        return g
    for p, g in PREFIXES:
        if base.startswith(p):
            return g
    return None


def samples(stream):
    """Yields each sample's frames, leaf first, as (function, is_kernel)."""
    frames = []
    in_sample = False
    for line in stream:
        if not line.strip():
            if in_sample:
                yield frames
            frames, in_sample = [], False
            continue
        m = FRAME.match(line)
        if m:
            dso = m.group(3)
            kernel = "kernel.kallsyms" in dso or dso.startswith("[") and dso != "[unknown]" and "vdso" not in dso
            frames.append((m.group(2).split("+0x")[0], kernel))
        else:
            in_sample = True
            frames = []
    if in_sample:
        yield frames


def classify(frames):
    if not frames or not frames[0][1]:
        return USER
    for name, kernel in frames:
        if not kernel:
            break
        g = group_of(name)
        if g:
            return g
    return OTHER


def cmd_group(args):
    counts = Counter()
    for frames in samples(sys.stdin):
        counts[classify(frames)] += 1
    kernel_total = sum(v for k, v in counts.items() if k != USER)
    user_total = counts[USER]
    if args.cpu_us is not None:
        # One precise total (schedstat, ns) split by the samples' shares:
        # finer than utime/stime's 10 ms ticks over a short run.
        n = kernel_total + user_total
        args.user_us = args.cpu_us * user_total / n if n else 0.0
        args.sys_us = args.cpu_us - args.user_us
    per_req = {}
    for g, v in counts.items():
        if g == USER:
            per_req[g] = args.user_us / args.requests if user_total else 0.0
        else:
            per_req[g] = args.sys_us / args.requests * v / kernel_total if kernel_total else 0.0
    json.dump({
        "server": args.server, "requests": args.requests, "user_us": args.user_us, "sys_us": args.sys_us,
        "samples": dict(counts), "us_per_req": per_req,
    }, sys.stdout)
    print()


def cmd_table(args):
    runs = defaultdict(list)
    for path in args.files:
        r = json.load(open(path))
        runs[r["server"]].append(r)
    servers = [s for s in ("ringkv", "redis", "base") if s in runs] + [s for s in runs if s not in ("ringkv", "redis", "base")]

    def med(server, group):
        return statistics.median(r["us_per_req"].get(group, 0.0) for r in runs[server])

    groups = [g for g in ORDER if any(med(s, g) > 0 for s in servers)]
    w = max(len(g) for g in groups + ["kernel total"])
    head = f"{'us per request':{w}} " + " ".join(f"{s:>8}" for s in servers)
    if len(servers) >= 2:
        head += f" {'ratio':>7} {'diff':>7}"
    if len(servers) >= 3:
        head += f" {servers[0] + '-' + servers[2]:>12}"
    print(head + "   (ratio, diff: " + " vs ".join(servers[:2]) + ")")

    def line(label, vals):
        s = f"{label:{w}} " + " ".join(f"{v:8.3f}" for v in vals)
        if len(vals) >= 2:
            s += f" {vals[0] / vals[1]:7.2f}" if vals[1] else f" {'-':>7}"
            s += f" {vals[0] - vals[1]:+7.3f}"
        if len(vals) >= 3:
            s += f" {vals[0] - vals[2]:+12.3f}"
        print(s)

    for g in groups:
        if g == USER:
            continue
        line(g, [med(s, g) for s in servers])
    line("kernel total", [statistics.median(r["sys_us"] / r["requests"] for r in runs[s]) for s in servers])
    line(USER, [med(s, USER) for s in servers])
    print()
    print("share of each server's kernel samples, % (independent of how loaded the machine was):")

    def share(server, group):
        vals = []
        for r in runs[server]:
            k = sum(v for g, v in r["samples"].items() if g != USER)
            vals.append(100.0 * r["samples"].get(group, 0) / k if k else 0.0)
        return statistics.median(vals)

    for g in groups:
        if g == USER:
            continue
        print(f"{g:{w}} " + " ".join(f"{share(s, g):8.1f}" for s in servers))
    print("runs: " + ", ".join(f"{s} {len(runs[s])} ({sum(sum(r['samples'].values()) for r in runs[s])} samples)" for s in servers))


def cmd_unmatched(args):
    chains = Counter()
    leaves = Counter()
    for frames in samples(sys.stdin):
        if classify(frames) != args.group:
            continue
        k = [n for n, kern in frames if kern]
        leaves[k[0]] += 1
        chains[" <- ".join(k[:8])] += 1
    total = sum(leaves.values())
    print(f"{total} samples in {args.group!r}; leaves:")
    for n, c in leaves.most_common(args.top):
        print(f"{c:6} {n}")
    print("chains:")
    for n, c in chains.most_common(args.top):
        print(f"{c:6} {n}")


def main():
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("group")
    g.add_argument("--server", required=True)
    g.add_argument("--requests", type=int, required=True)
    g.add_argument("--user-us", type=float, default=0.0)
    g.add_argument("--sys-us", type=float, default=0.0)
    g.add_argument("--cpu-us", type=float, help="total CPU; user/kernel split by the samples (overrides the two above)")
    t = sub.add_parser("table")
    t.add_argument("files", nargs="+")
    u = sub.add_parser("unmatched")
    u.add_argument("--top", type=int, default=40)
    u.add_argument("--group", default=OTHER, help="list this group's chains instead")
    a = ap.parse_args()
    {"group": cmd_group, "table": cmd_table, "unmatched": cmd_unmatched}[a.cmd](a)


if __name__ == "__main__":
    main()
