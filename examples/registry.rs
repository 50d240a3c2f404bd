//! The registry (name server): `cargo run --example registry -- -h`. The code is
//! [`just_hungry::apps::registry`], which the installed `just-hungry registry` runs too.

fn main() -> std::process::ExitCode {
    just_hungry::apps::registry::main()
}
