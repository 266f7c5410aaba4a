fn main() {
    eprintln!("this app is not built yet; see the README");
    std::process::exit(2);
}
