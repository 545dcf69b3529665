//! Teleconsult: a remote-consultation server pairing grassroots clinics with experts at
//! tertiary hospitals. One binary serves the HTTP API, the signaling WebSocket and the web
//! client; see README.md for the architecture.

pub mod api;
pub mod app;
pub mod audit;
pub mod auth;
pub mod config;
pub mod consultations;
pub mod db;
pub mod demo;
pub mod devices;
pub mod dicom;
pub mod directory;
pub mod domain;
pub mod ecg;
pub mod error;
pub mod fhir;
pub mod files;
pub mod kiosk;
pub mod netcheck;
pub mod notifications;
pub mod observability;
pub mod patients;
pub mod principal;
pub mod proxy;
pub mod record;
pub mod scheduling;
pub mod signaling;
pub mod vitals;
pub mod web;
