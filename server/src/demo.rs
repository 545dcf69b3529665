//! The demo medical consortium, loaded by `--demo` into an empty database: one tertiary
//! hospital with cardiology, radiology and endocrinology, two community health centres, an
//! office-building medical corner, their staff, two patients (with demo health cards) and weekly
//! expert availability.
//! Every demo account's password is `demo-password`.

use crate::db::Db;
use crate::directory::{self, NewDepartment, NewExpertProfile, NewOrganisation, NewUser, Specialty};
use crate::domain::people::{IdentifierKind, Role};
use crate::error::ApiError;
use crate::patients::{self, resident_id, NewPatient};
use crate::principal::AuthUser;

pub const DEMO_PASSWORD: &str = "demo-password";

/// The issuer of the demo patients' electronic health cards (`4401060000000001` patient.zhang,
/// `4401060000000002` patient.liu, valid through 2036).
pub const DEMO_CARD_ISSUER: &str = "DEMO-EHC";

/// Loads the demo consortium unless the database already holds organisations.
pub async fn load_if_empty(db: &Db) -> anyhow::Result<bool> {
    if directory::store::has_organisations(db).await? {
        tracing::info!("demo: database already holds data; nothing loaded");
        return Ok(false);
    }
    load(db).await.map_err(|e| anyhow::anyhow!("loading demo data: {e}"))?;
    tracing::info!("demo: consortium loaded; every demo account's password is {DEMO_PASSWORD}");
    Ok(true)
}

/// The demo organisations' ids.
struct Sites {
    hospital: String,
    donghu: String,
    xicheng: String,
}

async fn load(db: &Db) -> Result<(), ApiError> {
    load_specialties(db).await?;
    let sites = load_organisations(db).await?;
    let staff = load_staff(db, &sites).await?;
    load_patients(db, &sites, &staff.donghu_doctor).await?;
    load_availability(db, &staff.experts).await
}

async fn load_specialties(db: &Db) -> Result<(), ApiError> {
    for (code, en, zh) in [
        ("cardiology", "Cardiology", "心血管内科"),
        ("radiology", "Radiology", "放射科"),
        ("endocrinology", "Endocrinology", "内分泌科"),
        ("general_practice", "General practice", "全科医学"),
    ] {
        directory::create_specialty(db, &Specialty { code: code.into(), name_en: en.into(), name_zh: zh.into() })
            .await?;
    }
    Ok(())
}

/// The hospital, its three linked sites.
async fn load_organisations(db: &Db) -> Result<Sites, ApiError> {
    let org = |name: &str, kind: &str, address: &str| NewOrganisation {
        name: name.into(),
        kind: kind.into(),
        address: address.into(),
    };
    let hospital =
        directory::create_organisation(db, &org("市第一人民医院", "tertiary_hospital", "人民路 1 号")).await?;
    let donghu =
        directory::create_organisation(db, &org("东湖社区卫生服务中心", "community_health_centre", "东湖路 88 号"))
            .await?;
    let xicheng =
        directory::create_organisation(db, &org("西城社区卫生服务中心", "community_health_centre", "西城大街 12 号"))
            .await?;
    let corner = directory::create_organisation(db, &org("科创大厦医务室", "medical_corner", "科创大厦 3 层")).await?;
    for centre in [&donghu, &xicheng, &corner] {
        directory::create_link(db, &hospital, centre).await?;
    }
    Ok(Sites { hospital, donghu, xicheng })
}

/// A demo account of `role` (no department, no profile, no patient record).
fn account(username: &str, name: &str, role: Role, org: &str) -> NewUser {
    NewUser {
        username: username.into(),
        display_name: name.into(),
        password: DEMO_PASSWORD.into(),
        role,
        organisation_id: org.into(),
        department_id: None,
        expert: None,
        patient_id: None,
    }
}

/// The ids of Donghu's community doctor and the demo experts.
struct Staff {
    donghu_doctor: String,
    experts: [String; 2],
}

/// Departments and staff.
async fn load_staff(db: &Db, sites: &Sites) -> Result<Staff, ApiError> {
    let hospital = &sites.hospital;
    let dept = |name: &str, specialty: &str| NewDepartment { name: name.into(), specialty: specialty.into() };
    let cardiology = directory::create_department(db, hospital, &dept("心血管内科", "cardiology")).await?;
    let radiology = directory::create_department(db, hospital, &dept("放射科", "radiology")).await?;
    directory::create_department(db, hospital, &dept("内分泌科", "endocrinology")).await?;

    directory::create_user(db, &account("admin", "系统管理员", Role::Admin, hospital)).await?;
    directory::create_user(db, &account("coordinator", "医联体协调员 周敏", Role::Coordinator, hospital)).await?;
    let expert = |username: &str, name: &str, department: String, title: &str, specialty: &str| NewUser {
        department_id: Some(department),
        expert: Some(NewExpertProfile { title: title.into(), specialties: vec![specialty.into()], time_zone: None }),
        ..account(username, name, Role::Expert, hospital)
    };
    let wang = directory::create_user(db, &expert("dr.wang", "王建国", cardiology, "chief", "cardiology")).await?;
    let chen =
        directory::create_user(db, &expert("dr.chen", "陈静", radiology, "associate_chief", "radiology")).await?;
    let donghu_doctor =
        directory::create_user(db, &account("dr.li", "李明", Role::CommunityDoctor, &sites.donghu)).await?;
    directory::create_user(db, &account("dr.zhao", "赵磊", Role::CommunityDoctor, &sites.xicheng)).await?;
    Ok(Staff { donghu_doctor, experts: [wang, chen] })
}

/// Two patients of Donghu with demo health cards and their logins, registered by Donghu's
/// community doctor (dr.li).
async fn load_patients(db: &Db, sites: &Sites, doctor: &str) -> Result<(), ApiError> {
    let registrar = AuthUser {
        id: doctor.to_string(),
        username: "dr.li".into(),
        role: Role::CommunityDoctor,
        org: sites.donghu.clone(),
        client_addr: "demo-loader".into(),
        family: String::new(),
        device: None,
    };
    for (username, name, sex, birth, phone, rid17, card) in [
        ("patient.zhang", "张秀英", "female", "1948-05-12", "13800000001", "11010519480512002", "4401060000000001"),
        ("patient.liu", "刘德明", "male", "1952-09-30", "13800000002", "11010519520930001", "4401060000000002"),
    ] {
        let check = resident_id::check_char(rid17).unwrap_or('0');
        let pid = patients::create_patient(
            db,
            &registrar,
            &NewPatient {
                name: name.into(),
                sex: sex.into(),
                birth_date: birth.into(),
                phone: phone.into(),
                resident_id: format!("{rid17}{check}"),
                home_organisation_id: Some(sites.donghu.clone()),
                // A demo electronic health card (test format: docs/resident.md).
                identifiers: vec![patients::identifiers::NewIdentifier {
                    kind: IdentifierKind::HealthCard,
                    value: Some(card.into()),
                    qr: None,
                    issuer: Some(DEMO_CARD_ISSUER.into()),
                    valid_until: Some("2036-12-31".into()),
                }],
            },
            "tchc1",
        )
        .await?;
        let login = NewUser { patient_id: Some(pid), ..account(username, name, Role::Patient, &sites.donghu) };
        directory::create_user(db, &login).await?;
    }
    Ok(())
}

/// Weekday clinics for the experts: 09:00-12:00 and 14:00-17:00 Asia/Shanghai, 30-minute slots,
/// with the default booking policy (no buffer, no daily cap, no notice).
async fn load_availability(db: &Db, experts: &[String]) -> Result<(), ApiError> {
    let rules: Vec<crate::scheduling::store::NewRule<'_>> = (1..=5i64)
        .flat_map(|weekday| {
            [("09:00", "12:00"), ("14:00", "17:00")].map(|(start, end)| crate::scheduling::store::NewRule {
                weekday,
                start,
                end,
                slot_minutes: 30,
                time_zone: "Asia/Shanghai".into(),
            })
        })
        .collect();
    for expert in experts {
        let mut tx = db.begin_write().await?;
        crate::scheduling::store::replace_availability(&mut tx, expert, &rules, (0, 0, 0)).await?;
        tx.commit().await?;
    }
    Ok(())
}
