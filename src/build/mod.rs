//! Source code before it is an image: git access (ls-remote, shallow fetch, deploy keys) and detection of what a
//! repository is and how to build and start it, and the Dockerfiles the `auto` builder generates from that.

pub mod detect;
pub mod dockerfile;
pub mod git;
