//! Present so that cargo treats the hack's build-dependencies as real ones.

fn main() {}
