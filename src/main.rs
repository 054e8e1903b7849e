fn main() {
    println!("knockd");
}
