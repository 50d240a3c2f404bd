//! A replica: `cargo run --example replica -- -h`. The code is
//! [`just_hungry::apps::replica`], which the installed `just-hungry replica` runs too.

fn main() -> std::process::ExitCode {
    just_hungry::apps::replica::main()
}
