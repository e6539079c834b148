use tikv_jemallocator::Jemalloc;

#[global_allocator]
static GLOBAL: Jemalloc = Jemalloc;

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
