//! `weir-loadtest` command line: see the library docs and `--help`; `weir-loadtest compare --help`
//! for side-by-side runs against several endpoints.

use clap::Parser;

/// The same allocator as `weir`, so the generator's own cost stays small and comparable.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "compare") {
        args.remove(1);
        let options = weir_loadtest::compare::CompareOptions::parse_from(args);
        let comparison = weir_loadtest::compare::run(&options).await?;
        print!("{}", comparison.summary());
        if let Some(dir) = &options.run.out {
            println!(
                "report: {}/compare.json, {}/compare.svg",
                dir.display(),
                dir.display()
            );
        }
        return Ok(());
    }
    let options = weir_loadtest::Options::parse();
    let report = weir_loadtest::run(&options).await?;
    print!("{}", report.summary());
    if let Some(dir) = &options.out {
        println!(
            "report: {}/report.json, {}/report.svg",
            dir.display(),
            dir.display()
        );
    }
    Ok(())
}
