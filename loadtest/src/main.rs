//! `weir-loadtest` command line: see the library docs and `--help`.

use clap::Parser;

/// The same allocator as `weir`, so the generator's own cost stays small and comparable.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
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
