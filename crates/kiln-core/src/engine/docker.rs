//! The Docker Engine implementation of [`super::Engine`], over bollard.
