//! The synthetic generator behind `pfstatelog-bench` and the product's large-scale tests.

pub mod gen;
