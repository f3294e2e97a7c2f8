//! Operator commands that are not the server: `parley copy` (move an instance to another
//! database) and `parley backup` (an online copy of a SQLite instance).

pub mod admin;
pub mod backup;
pub mod copy;
