//! Runs commands in an isolated sandbox whose root is an image filesystem (runc).
