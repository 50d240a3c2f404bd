//! The command-line client: `cargo run --example client -- -h`. The code is
//! [`just_hungry::apps::client`], which the installed `just-hungry client` runs too.

fn main() -> std::process::ExitCode {
    just_hungry::apps::client::main()
}
