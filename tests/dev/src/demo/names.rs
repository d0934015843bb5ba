//! Word lists the generated team is drawn from: people's names, company names, job titles,
//! industries, and where their email addresses live.

pub const FIRST_NAMES: &[&str] = &[
    "Aaliyah",
    "Aaron",
    "Abigail",
    "Adam",
    "Adebayo",
    "Adrian",
    "Aisha",
    "Alejandro",
    "Alex",
    "Alice",
    "Amara",
    "Amelia",
    "Amir",
    "Ana",
    "Andrea",
    "Andrew",
    "Anika",
    "Anna",
    "Antoine",
    "Arjun",
    "Astrid",
    "Ava",
    "Beatriz",
    "Ben",
    "Benjamin",
    "Bianca",
    "Brandon",
    "Camila",
    "Carlos",
    "Caroline",
    "Charlotte",
    "Chen",
    "Chiara",
    "Chloé",
    "Chris",
    "Daniel",
    "Daniela",
    "David",
    "Diego",
    "Dmitri",
    "Elena",
    "Elif",
    "Elijah",
    "Emily",
    "Emma",
    "Ethan",
    "Fatima",
    "Felix",
    "Fernando",
    "Finn",
    "Freya",
    "Gabriel",
    "Grace",
    "Hannah",
    "Hana",
    "Hiroshi",
    "Ibrahim",
    "Ingrid",
    "Isabel",
    "Ivan",
    "Jack",
    "Jacob",
    "James",
    "Jana",
    "Javier",
    "Jessica",
    "Jin",
    "Joana",
    "John",
    "Jonas",
    "Jordan",
    "José",
    "Julia",
    "Kai",
    "Karim",
    "Kate",
    "Kenji",
    "Khadija",
    "Laura",
    "Leila",
    "Leon",
    "Liam",
    "Lina",
    "Lucas",
    "Lucía",
    "Luis",
    "Maja",
    "Malik",
    "Marco",
    "Maria",
    "Mariam",
    "Mark",
    "Mateo",
    "Matthew",
    "Maya",
    "Mehmet",
    "Mei",
    "Mia",
    "Michael",
    "Miguel",
    "Mohammed",
    "Nadia",
    "Naomi",
    "Nathan",
    "Nia",
    "Nikhil",
    "Noah",
    "Nora",
    "Olivia",
    "Omar",
    "Oscar",
    "Paul",
    "Pedro",
    "Priya",
    "Rachel",
    "Rafael",
    "Ravi",
    "Renée",
    "Ryan",
    "Samuel",
    "Santiago",
    "Sara",
    "Sebastian",
    "Sofia",
    "Søren",
    "Sophie",
    "Tariq",
    "Thomas",
    "Tomás",
    "Valentina",
    "Victor",
    "Wei",
    "William",
    "Yara",
    "Yusuf",
    "Zara",
    "Zoë",
];

pub const LAST_NAMES: &[&str] = &[
    "Abara",
    "Adeyemi",
    "Ahmed",
    "Alvarez",
    "Andersen",
    "Bauer",
    "Becker",
    "Bianchi",
    "Brown",
    "Castro",
    "Chen",
    "Choi",
    "Clarke",
    "Costa",
    "Cruz",
    "Da Silva",
    "Davies",
    "Dubois",
    "Eriksson",
    "Evans",
    "Fischer",
    "Fernández",
    "Fontaine",
    "Garcia",
    "Gómez",
    "Green",
    "Gupta",
    "Hansen",
    "Hashemi",
    "Hernández",
    "Hoffmann",
    "Hughes",
    "Ibrahim",
    "Ito",
    "Jansen",
    "Jensen",
    "Johnson",
    "Kaur",
    "Khan",
    "Kim",
    "Kowalski",
    "Kumar",
    "Larsen",
    "Laurent",
    "Lee",
    "Lindqvist",
    "López",
    "Martin",
    "Martínez",
    "Mensah",
    "Meyer",
    "Moreau",
    "Müller",
    "Murphy",
    "Nakamura",
    "Nguyen",
    "Nielsen",
    "Novak",
    "Nowak",
    "O'Brien",
    "Okafor",
    "Okonkwo",
    "Olsen",
    "Patel",
    "Pereira",
    "Petrov",
    "Popescu",
    "Quinn",
    "Ramírez",
    "Reddy",
    "Richter",
    "Rodríguez",
    "Romano",
    "Rossi",
    "Sánchez",
    "Santos",
    "Sato",
    "Schmidt",
    "Schneider",
    "Shah",
    "Silva",
    "Singh",
    "Smith",
    "Sørensen",
    "Suzuki",
    "Tanaka",
    "Taylor",
    "Thompson",
    "Torres",
    "Van Dijk",
    "Vargas",
    "Wagner",
    "Walker",
    "Wang",
    "Weber",
    "Williams",
    "Wilson",
    "Wójcik",
    "Yamamoto",
    "Yilmaz",
    "Zhang",
    "Zimmermann",
];

/// First halves of company names.
pub const COMPANY_STEMS: &[&str] = &[
    "Acme",
    "Alder",
    "Apex",
    "Arbor",
    "Atlas",
    "Aurora",
    "Beacon",
    "Birch",
    "Blue Harbor",
    "Bluefin",
    "Brightline",
    "Cascade",
    "Cedar",
    "Cobalt",
    "Compass",
    "Copper",
    "Crescent",
    "Crestview",
    "Driftwood",
    "Ember",
    "Evergreen",
    "Falcon",
    "Fieldstone",
    "Flint",
    "Foxglove",
    "Granite",
    "Greenleaf",
    "Harbor",
    "Helix",
    "Highland",
    "Horizon",
    "Iron Gate",
    "Juniper",
    "Keystone",
    "Lakeside",
    "Lantern",
    "Lighthouse",
    "Linden",
    "Lumen",
    "Maple",
    "Meridian",
    "Northwind",
    "Nova",
    "Oakridge",
    "Orbit",
    "Orchid",
    "Pinnacle",
    "Polaris",
    "Prairie",
    "Quartz",
    "Redwood",
    "Ridgeline",
    "Riverbend",
    "Saffron",
    "Sage",
    "Sequoia",
    "Silverline",
    "Skyline",
    "Solstice",
    "Sparrow",
    "Stonebridge",
    "Summit",
    "Tidewater",
    "Timber",
    "Trailhead",
    "Vanguard",
    "Vertex",
    "Willow",
    "Zephyr",
];

/// Second halves of company names, each with the industry it suggests.
pub const COMPANY_KINDS: &[(&str, &str)] = &[
    ("Analytics", "Computer Software"),
    ("Bank", "Banking"),
    ("Bio", "Biotechnology"),
    ("Capital", "Financial Services"),
    ("Cloud", "Information Technology and Services"),
    ("Consulting", "Management Consulting"),
    ("Dynamics", "Industrial Automation"),
    ("Energy", "Renewables & Environment"),
    ("Foods", "Food & Beverages"),
    ("Freight", "Logistics and Supply Chain"),
    ("Games", "Computer Games"),
    ("Health", "Hospital & Health Care"),
    ("Insurance", "Insurance"),
    ("Labs", "Research"),
    ("Learning", "E-Learning"),
    ("Logistics", "Logistics and Supply Chain"),
    ("Media", "Online Media"),
    ("Medical", "Medical Devices"),
    ("Networks", "Telecommunications"),
    ("Partners", "Financial Services"),
    ("Payments", "Financial Services"),
    ("Robotics", "Machinery"),
    ("Security", "Computer & Network Security"),
    ("Software", "Computer Software"),
    ("Studios", "Design"),
    ("Systems", "Information Technology and Services"),
    ("Therapeutics", "Pharmaceuticals"),
    ("Travel", "Leisure, Travel & Tourism"),
];

pub const COMPANY_SUFFIXES: &[&str] = &["", "", "", "", "Inc.", "Ltd", "GmbH", "LLC", "Group"];

pub const TLDS: &[&str] = &[
    "com", "com", "com", "com", "io", "io", "co", "ai", "dev", "net", "de", "co.uk", "fr", "nl",
];

pub const PERSONAL_EMAIL_DOMAINS: &[&str] = &[
    "gmail.com",
    "outlook.com",
    "yahoo.com",
    "icloud.com",
    "proton.me",
];

pub const JOB_TITLES: &[&str] = &[
    "Account Executive",
    "Account Manager",
    "Business Development Representative",
    "Chief Executive Officer",
    "Chief Financial Officer",
    "Chief Marketing Officer",
    "Chief Operating Officer",
    "Chief Technology Officer",
    "Content Marketing Manager",
    "Customer Success Manager",
    "Data Engineer",
    "Data Scientist",
    "Demand Generation Manager",
    "Director of Engineering",
    "Director of Finance",
    "Director of Marketing",
    "Director of Operations",
    "Director of Sales",
    "Engineering Manager",
    "Founder",
    "Head of Growth",
    "Head of People",
    "Head of Procurement",
    "Head of Product",
    "IT Manager",
    "Marketing Operations Manager",
    "Office Manager",
    "Operations Analyst",
    "Partnerships Manager",
    "Procurement Specialist",
    "Product Designer",
    "Product Manager",
    "Recruiter",
    "Revenue Operations Manager",
    "Sales Development Representative",
    "Sales Operations Analyst",
    "Senior Software Engineer",
    "Software Engineer",
    "Solutions Architect",
    "Staff Engineer",
    "VP Customer Success",
    "VP Engineering",
    "VP Marketing",
    "VP Operations",
    "VP Sales",
];

/// Titles people are promoted to, by the word their title starts with.
pub const PROMOTIONS: &[(&str, &str)] = &[
    ("Account Executive", "Senior Account Executive"),
    ("Account Manager", "Senior Account Manager"),
    ("Data Engineer", "Senior Data Engineer"),
    ("Data Scientist", "Lead Data Scientist"),
    ("Director of Engineering", "VP Engineering"),
    ("Director of Marketing", "VP Marketing"),
    ("Director of Operations", "VP Operations"),
    ("Director of Sales", "VP Sales"),
    ("Engineering Manager", "Director of Engineering"),
    ("Product Manager", "Senior Product Manager"),
    ("Sales Development Representative", "Account Executive"),
    ("Software Engineer", "Senior Software Engineer"),
    ("Senior Software Engineer", "Staff Engineer"),
];

/// Upstream users (sales reps) who own contacts and companies; the demo maps each to one of the
/// HubSpot sandbox's owners.
pub const SALES_REPS: &[(&str, &str)] = &[
    ("usr_ada", "70000001"),
    ("usr_grace", "70000002"),
    ("usr_alan", "70000003"),
    ("usr_katherine", "70000004"),
];

/// Upstream campaigns contacts belong to.
pub const CAMPAIGNS: &[&str] = &[
    "cmp_q3_outbound",
    "cmp_webinar_followup",
    "cmp_enterprise_abm",
];

/// The campaign whose contacts stay out of HubSpot (`push_to_crm = false`).
pub const PRIVATE_CAMPAIGN: &str = "cmp_partner_referrals";

/// The campaign in which a reply opens a deal (`deal_triggers = ["email_replied"]`).
pub const DEAL_CAMPAIGN: &str = "cmp_q3_outbound";

/// Campaign names as the reps read them, by campaign id.
pub const CAMPAIGN_NAMES: &[(&str, &str)] = &[
    ("cmp_q3_outbound", "Q3 outbound – operations leaders"),
    ("cmp_webinar_followup", "Webinar follow-up"),
    ("cmp_enterprise_abm", "Enterprise ABM"),
    ("cmp_partner_referrals", "Partner referrals"),
];

/// The name of campaign `id`, when it has one.
pub fn campaign_name(id: &str) -> Option<&'static str> {
    CAMPAIGN_NAMES
        .iter()
        .find(|(campaign, _)| *campaign == id)
        .map(|(_, name)| *name)
}

/// Sales development reps who send steps for the team without a HubSpot seat: upstream users
/// that no `[[users.mapping]]` names and whose addresses are no HubSpot owner's, so their
/// activities take the contact's owner. (user id, email)
pub const SDRS: &[(&str, &str)] = &[
    ("usr_sdr_noah", "noah.berg@sdr.team-demo.example"),
    ("usr_sdr_mia", "mia.costa@sdr.team-demo.example"),
    ("usr_sdr_yusuf", "yusuf.demir@sdr.team-demo.example"),
];

/// Subjects of sequence emails, by step (the last one repeats).
pub const EMAIL_SUBJECTS: &[&str] = &[
    "Quick question about {company}",
    "Following up: {company} and shorter onboarding",
    "Case study: how teams like {company} cut ramp time",
    "Should I close your file?",
];

/// Links people click in sequence emails.
pub const CLICKED_LINKS: &[&str] = &[
    "https://team-demo.example/case-studies/onboarding",
    "https://team-demo.example/pricing",
    "https://team-demo.example/webinars/q3-roadmap",
    "https://team-demo.example/book-a-demo",
];

/// What a reply says, first line.
pub const REPLIES: &[&str] = &[
    "Thanks for reaching out, happy to talk next week.",
    "Not the right time, try me again next quarter.",
    "Can you send pricing for a team of 40?",
    "Looping in our head of operations.",
    "Please take me off this list.",
];

/// Call outcomes as the dialer names them.
pub const CALL_OUTCOMES: &[&str] = &[
    "connected",
    "connected",
    "no answer",
    "left voicemail",
    "busy",
    "wrong number",
];

/// Titles of tasks reps set themselves.
pub const TASK_SUBJECTS: &[&str] = &[
    "Send the security questionnaire",
    "Prepare a tailored demo",
    "Follow up after the conference",
    "Check in on the trial",
];

/// Titles of booked meetings.
pub const MEETING_TITLES: &[&str] = &[
    "Discovery call",
    "Product demo",
    "Pricing review",
    "Technical deep dive",
];

/// Where upstream says a lead came from (an unmapped custom field).
pub const LEAD_SOURCES: &[&str] = &["website", "webinar", "referral", "outbound", "event"];

/// HubSpot's lead status options, in the order a lead moves through them.
pub const LEAD_STATUSES: &[&str] = &[
    "NEW",
    "OPEN",
    "ATTEMPTED_TO_CONTACT",
    "CONNECTED",
    "IN_PROGRESS",
    "OPEN_DEAL",
];

/// Lead status values as people type them: not HubSpot's option values.
pub const MISTYPED_LEAD_STATUSES: &[&str] = &[
    "new",
    "Open",
    "in progress",
    "Connected",
    "Qualified",
    "attempted",
];

/// Nicknames people are entered under first and corrected to later.
pub const NICKNAMES: &[(&str, &str)] = &[
    ("Alex", "Alexander"),
    ("Ben", "Benjamin"),
    ("Chris", "Christopher"),
    ("Dan", "Daniel"),
    ("Kate", "Katherine"),
    ("Matt", "Matthew"),
    ("Mike", "Michael"),
    ("Sam", "Samuel"),
    ("Tom", "Thomas"),
    ("Will", "William"),
];

/// `name` as it can appear in an email address or a URL: lower-case ASCII letters and digits.
pub fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        let folded = match c {
            'á' | 'à' | 'â' | 'ä' | 'ã' | 'å' | 'Á' => 'a',
            'ç' => 'c',
            'é' | 'è' | 'ê' | 'ë' | 'É' => 'e',
            'í' | 'ì' | 'î' | 'ï' => 'i',
            'ñ' => 'n',
            'ó' | 'ò' | 'ô' | 'ö' | 'õ' | 'ø' | 'Ø' => 'o',
            'ú' | 'ù' | 'û' | 'ü' => 'u',
            'ś' => 's',
            'ź' | 'ż' => 'z',
            'ł' => 'l',
            other => other.to_ascii_lowercase(),
        };
        if folded.is_ascii_alphanumeric() {
            out.push(folded);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_are_plain_ascii() {
        assert_eq!(slug("Søren"), "soren");
        assert_eq!(slug("O'Brien"), "obrien");
        assert_eq!(slug("Da Silva"), "dasilva");
        assert_eq!(slug("Wójcik"), "wojcik");
        for name in FIRST_NAMES.iter().chain(LAST_NAMES) {
            let slug = slug(name);
            assert!(!slug.is_empty(), "{name}");
            assert!(
                slug.bytes().all(|b| b.is_ascii_lowercase()),
                "{name} -> {slug}"
            );
        }
    }

    #[test]
    fn lead_statuses_are_distinct_from_their_mistyped_forms() {
        for wrong in MISTYPED_LEAD_STATUSES {
            assert!(!LEAD_STATUSES.contains(wrong), "{wrong}");
        }
    }
}
