use super::*;

fn objects(data: &[u8]) -> Vec<Object> {
    let mut lexer = Lexer::new(data, 0);
    let mut out = Vec::new();
    while let Some(next) = lexer.next_object() {
        if let Ok(object) = next {
            out.push(object);
        }
    }
    out
}

#[test]
fn strings_in_every_notation() {
    let parsed = objects(b"(a\\(b\\)c (nested) \\112\\141\\156 \\\n end) <4A 61 6e7> (\\0533)");
    assert_eq!(
        parsed,
        [
            Object::String(b"a(b)c (nested) Jan  end".to_vec()),
            Object::String(b"Jan\x70".to_vec()),
            Object::String(b"+3".to_vec()),
        ]
    );
}

#[test]
fn references_dictionaries_names_and_numbers() {
    let parsed = objects(b"<< /Type /Pa#67e /Kids [3 0 R 4 0 R] /Count 2 /X -.5 /Y 1. >> 7 0 R 12");
    let Object::Dict(dict) = &parsed[0] else {
        panic!("{parsed:?}")
    };
    assert!(dict.is(b"Type", b"Page"));
    assert_eq!(
        dict.get(b"Kids"),
        Some(&Object::Array(vec![Object::Ref(3), Object::Ref(4)]))
    );
    assert_eq!(dict.get(b"X"), Some(&Object::Real(-0.5)));
    assert_eq!(dict.get(b"Y"), Some(&Object::Real(1.0)));
    assert_eq!(parsed[1..], [Object::Ref(7), Object::Int(12)]);
}

#[test]
fn a_damaged_object_does_not_hide_the_objects_after_it() {
    let data = b"1 0 obj << /A (unbalanced endobj\n2 0 obj (Jan) endobj\n3 0 obj << /B [1 2 endobj\n4 0 obj (Jansen) endobj";
    let doc = Document::scan(data);
    assert_eq!(doc.object(2), Some(&Object::String(b"Jan".to_vec())));
    assert_eq!(doc.object(4), Some(&Object::String(b"Jansen".to_vec())));
    assert!(matches!(doc.object(3), Some(Object::Dict(_))));
}

#[test]
fn deep_nesting_does_not_exhaust_the_stack() {
    let mut data = vec![b'['; 100_000];
    data.extend(vec![b']'; 100_000]);
    assert_eq!(objects(&data).len(), 1);
}

#[test]
fn objects_and_streams_are_found_by_scanning() {
    let data =
        b"%PDF-1.4\n1 0 obj\n<< /Length 5 0 R >>\nstream\nab endstream c\nendstream\nendobj\n\
                 5 0 obj 14 endobj\n2 0 obj (x) endobj trailer << /Root 1 0 R >>";
    let doc = Document::scan(data);
    assert_eq!(doc.objects.len(), 3);
    let Body::Stream { raw, .. } = &doc.objects[0].body else {
        panic!()
    };
    assert_eq!(&data[raw.clone()], b"ab endstream c");
    assert_eq!(doc.object(2), Some(&Object::String(b"x".to_vec())));
    assert_eq!(doc.trailers.len(), 1);
}
