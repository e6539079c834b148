use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

/// jemalloc's options, read before `main`: `thp:always` asks for
/// transparent huge pages (MADV_HUGEPAGE) on all the memory it maps, where
/// the kernel's THP mode is `madvise`. The keyspace then sits in 2 MiB pages,
/// so fork() copies ~512x fewer page-table entries (BGSAVE's pause) while a
/// write to a shared page after the fork still copies 4 KiB (the kernel
/// splits the huge page on copy-on-write). `disable-thp yes` turns it off
/// for the process (prctl, see `ringkv::run`); `_RJEM_MALLOC_CONF` in the
/// environment overrides this string.
#[allow(non_upper_case_globals)]
#[export_name = "_rjem_malloc_conf"]
// SAFETY: both fields of `MallocConf` are references to one byte of the
// same size and alignment (u8 and c_char), so reading `c` after writing
// `bytes` yields a valid `&'static` to the string's first byte; jemalloc
// reads the NUL-terminated string from there.
pub static malloc_conf: Option<&'static libc::c_char> = Some(unsafe { MallocConf { bytes: &b"thp:always\0"[0] }.c });

/// The C string's first byte, seen as a `c_char` (u8 and c_char may differ in sign).
union MallocConf {
    bytes: &'static u8,
    c: &'static libc::c_char,
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "-v" || a == "--version") {
        println!("ringkv v={}", env!("CARGO_PKG_VERSION"));
        return;
    }
    if args.iter().any(|a| a == "-h" || a == "--help") {
        println!("Usage: ringkv [/path/to/ringkv.conf] [--option value ...]\n       ringkv --port 6380 --save \"\" --shards 4 --cpu-affinity yes");
        return;
    }
    let config = match ringkv::config::Config::from_args(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{}", e);
            std::process::exit(1);
        }
    };
    if let Err(e) = ringkv::log::init(config.loglevel, &config.logfile) {
        eprintln!("{}", e);
        std::process::exit(1);
    }
    for w in &config.startup_warnings {
        ringkv::warning!("{}", w);
    }
    if let Err(e) = ringkv::run(config) {
        ringkv::warning!("{}", e);
        std::process::exit(1);
    }
}
