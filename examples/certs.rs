//! Development certificates for a cluster: `cargo run --example certs -- -h`. The code is
//! [`just_hungry::apps::certs`], which the installed `just-hungry certs` runs too.

fn main() -> std::process::ExitCode {
    just_hungry::apps::certs::main()
}
